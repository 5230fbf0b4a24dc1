"""Configs, presets, flag parsing and flagfiles (no TensorFlow: fast)."""
import dataclasses
import pathlib

import pytest
from absl import flags
from absl.testing import flagsaver

from tfmvae import configs
from tfmvae.bin import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
common.define_config_flags()

# Flagfiles owned by the training binaries' author -> the preset they spell out.
FLAGFILE_PRESETS = {"smoke": "smoke", "quickstart": "quickstart", "mm_svg_fp": "mm_svg_fp",
                    "mm_svg_lp": "mm_svg_lp", "mm_method1": "mm_method1",
                    "mm_method2": "mm_method2", "mm_deterministic": "mm_deterministic"}


def parse(*args):
  FLAGS.unparse_flags()
  FLAGS(["prog", *args])
  return common.config_from_flags()


@pytest.mark.parametrize("name", sorted(configs.PRESETS))
def test_presets_validate_and_round_trip_json(name):
  config = configs.validate(configs.PRESETS[name])
  assert configs.Config.from_json(config.to_json()) == config


@pytest.mark.parametrize("name", sorted(FLAGFILE_PRESETS))
def test_flagfile_equals_its_preset(name):
  """Each flagfile spells out its preset: the explicit flags agree with it."""
  with flagsaver.flagsaver():
    config = parse(f"--flagfile={ROOT / 'flags' / (name + '.flags')}")
  assert config.model_dir == f"runs/{name}"
  expected = configs.PRESETS[FLAGFILE_PRESETS[name]].replace(model_dir=f"runs/{name}")
  diff = {f.name: (getattr(config, f.name), getattr(expected, f.name))
          for f in dataclasses.fields(configs.Config)
          if getattr(config, f.name) != getattr(expected, f.name)}
  assert not diff


def test_other_flagfiles_parse():
  """Flagfiles written by others (mnist/celeba) use only flags that exist."""
  for path in sorted((ROOT / "flags").glob("*.flags")):
    with flagsaver.flagsaver():
      FLAGS.unparse_flags()
      FLAGS(["prog", f"--flagfile={path}"])  # Raises on an unknown flag.


def test_later_flags_override_flagfile_and_preset():
  with flagsaver.flagsaver():
    config = parse(f"--flagfile={ROOT / 'flags' / 'smoke.flags'}", "--steps=11",
                   "--model_options=a=1,b=x,c=[1,2]", "--hidden_units=3,5")
  assert config.steps == 11
  assert config.model_options == {"a": 1, "b": "x", "c": [1, 2]}
  assert config.hidden_units == (3, 5)
  assert config.latent_dim == configs.PRESETS["smoke"].latent_dim  # From the preset.


def test_flag_defaults_come_from_the_dataclass():
  defaults = configs.Config()
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["prog"])
    for f in dataclasses.fields(configs.Config):
      value = common._flag_value(f.name)  # pylint: disable=protected-access
      assert value == getattr(defaults, f.name) or (f.name == "model_options" and value == {})
      assert FLAGS[f.name].help
    assert common.config_from_flags() == defaults


@pytest.mark.parametrize("changes, words", [
    (dict(model="nope"), "unknown model"),
    (dict(dataset="moving_mnist"), "is video: pick a multimodal dataset"),
    (dict(dataset="mnist_pairs", image_size=32), "28x28x1"),
    (dict(dataset="celeba", channels=1), "channels must be 3"),
    (dict(data_dir="/no/such/dir"), "/no/such/dir does not exist"),
    (dict(steps=0), "--steps must be positive"),
    (dict(strategy="magic"), "--strategy"),
    (dict(model="svg_lp", dataset="moving_mnist", image_size=32, digit_size=40),
     "exceeds"),
])
def test_validate_names_the_problem(changes, words):
  base = configs.Config() if "model" not in changes else configs.Config(dataset="moving_shapes")
  with pytest.raises(configs.ConfigError) as e:
    configs.validate(dataclasses.replace(base, **changes))
  assert words in str(e.value)
  assert "\n" not in str(e.value)


def test_incompatible_fields_ignore_resumable_ones():
  saved = configs.PRESETS["smoke"]
  assert configs.incompatible_fields(saved, saved.replace(steps=99, model_dir="x",
                                                          eval_samples=7)) == []
  diff = configs.incompatible_fields(saved, saved.replace(latent_dim=5, model="vaegan"))
  assert {d[0] for d in diff} == {"latent_dim", "model"}


def test_registry_is_lazy_and_extensible():
  assert all(":" in spec.builder for spec in configs.MODELS.values())
  configs.register_model("my_model", "video", "my_package.models:build")
  try:
    assert configs.validate(configs.Config(model="my_model", dataset="moving_shapes"))
  finally:
    del configs.MODELS["my_model"]
  with pytest.raises(configs.ConfigError):
    configs.Config().replace(no_such_field=1)


def test_image_network_flag():
  with flagsaver.flagsaver():
    assert parse("--image_network=mlp").image_network == "mlp"
    assert parse().image_network == "auto"
    with pytest.raises(flags.IllegalFlagValueError):
      parse("--image_network=resnet")
  with pytest.raises(configs.ConfigError, match="image_network"):
    configs.validate(configs.PRESETS["mnist_mvae"].replace(image_network="resnet"))


def test_eval_ssim_and_generation_batchnorm_flags():
  with flagsaver.flagsaver():
    default = parse()
    assert (default.eval_ssim, default.generation_batchnorm) == ("gaussian", "moving")
    config = parse("--eval_ssim=svg", "--generation_batchnorm=batch")
    assert (config.eval_ssim, config.generation_batchnorm) == ("svg", "batch")
    assert parse("--ssim=svg").eval_ssim == "svg"  # the short alias
    assert common.explicit_overrides() == {"eval_ssim": "svg"}
    for bad in ("--ssim=skimage", "--eval_ssim=ms", "--generation_batchnorm=train"):
      with pytest.raises(flags.IllegalFlagValueError):
        parse(bad)
  for changes, words in ((dict(eval_ssim="skimage"), "--eval_ssim='skimage' is not one of"),
                         (dict(generation_batchnorm="train"), "--generation_batchnorm='train'")):
    with pytest.raises(configs.ConfigError, match=words):
      configs.validate(configs.Config().replace(**changes))
  # Evaluation settings: they may change between runs of one model_dir.
  saved = configs.PRESETS["mm_svg_lp"]
  assert configs.incompatible_fields(
      saved, saved.replace(eval_ssim="svg", generation_batchnorm="batch")) == []
  # A config.json written before these fields existed still loads (defaults).
  old = configs.Config.from_json(saved.to_json().replace('"eval_ssim"', '"_gone"'))
  assert old.eval_ssim == "gaussian"
