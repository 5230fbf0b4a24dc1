"""Flags shared by tfmvae-train / -eval / -sample: one flag per `configs.Config` field.

Every flag's default is the dataclass default. A config is built as: the preset
(`--preset`, else `Config()`), then every flag given on the command line or in a
`--flagfile` (later ones win, as absl parses them in order). Only the binaries'
`main` reads FLAGS; this module only defines them and converts them to a Config.

Errors: bad values, unknown flags and contradictory settings end the process with
a one-line message `<binary>: error: ...` and exit status 2 (`exit_on_error`,
`parse_flags`), before anything is written.
"""
import dataclasses
import json
import sys

from absl import flags

from tfmvae import configs

FLAGS = flags.FLAGS
EXIT_BAD_INPUT = 2

HELP = {
    "model": f"Model family: one of {sorted(configs.MODELS)}.",
    "dataset": f"Dataset: one of {sorted(configs.DATASETS)}.",
    "model_dir": "Directory for checkpoints, TensorBoard summaries and config.json.",
    "steps": "Total training steps; rerunning continues up to this count.",
    "batch_size": "Global batch size (split across replicas).",
    "optimizer": "Optimizer of every parameter group: adam, torch_adam (PyTorch's Adam), rmsprop or sgd.",
    "learning_rate": "Learning rate (encoder/decoder optimizers of GAN models).",
    "beta_1": "Adam's beta_1.",
    "discriminator_learning_rate": "Discriminator learning rate (default: --learning_rate).",
    "strategy": "Distribution: default, mirrored (local devices), multi_worker (TF_CONFIG) "
                "or tpu (TPUClusterResolver).",
    "tpu": "TPU name or grpc:// address for --strategy=tpu ('' = local/Colab TPU).",
    "mixed_precision": "none, float16 (mixed_float16) or bfloat16 (mixed_bfloat16).",
    "jit_compile": "XLA compilation of the train step: auto, true or false.",
    "seed": "Seed of the weights, the sampling and the generated data.",
    "checkpoint_every": "Steps between checkpoints (a kill loses at most this many).",
    "max_checkpoints": "Number of checkpoints kept.",
    "summary_every": "Steps between TensorBoard scalar summaries of every loss term.",
    "image_every": "Steps between TensorBoard image summaries (0: only at the end).",
    "steps_per_epoch": "Steps per Keras epoch (progress bar and History granularity).",
    "validation_steps": "Validation batches evaluated at the end of each epoch (0: none).",
    "kl_warmup_steps": "Steps of linear KL warm-up from 0 to --beta (0: none).",
    "beta": "Final KL weight.",
    "latent_dim": "Size of the latent code z (per time step for video models).",
    "hidden_units": "Comma-separated dense sizes of the MVAE/VAE-GAN networks.",
    "filters": "Filters of the first conv block.",
    "batch_norm": "BatchNorm in the conv networks of MVAE/VAE-GAN.",
    "image_likelihood": "Pixel likelihood of MVAE image modalities: bernoulli or gaussian.",
    "image_network": "Image networks of MVAE/VAE-GAN: auto (conv), conv, or mlp (dense "
                     "--hidden_units on flattened pixels: the MVAE paper's MNIST nets).",
    "label_weight": "lambda of the second modality (label or attributes) in the ELBO.",
    "num_subsets": "Random subsets k of the sub-sampled MVAE objective.",
    "model_options": "Extra constructor arguments of the model family, comma-separated "
                     "key=value with JSON values, e.g. g_dim=128,rnn_size=256.",
    "data_dir": "Dataset folder ('' = the loader's default, e.g. $TFMVAE_MNIST_DIR).",
    "manual_dir": "TFDS manual-download folder (offline CelebA).",
    "image_size": "Image/frame side in pixels.",
    "channels": "Image/frame channels (1 or 3).",
    "label_fraction": "Share of training examples that keep their second modality.",
    "attributes": "CelebA attributes: mvae18, all, or comma-separated names.",
    "shuffle_buffer": "Shuffle buffer of finite training sets.",
    "n_past": "Conditioning frames.",
    "n_future": "Predicted frames in training (sequence length n_past + n_future).",
    "num_digits": "Digits per Moving MNIST sequence.",
    "digit_size": "Side the 28x28 MNIST digits are resized to (SVG: 32).",
    "stochastic": "Stochastic bounces (SM-MNIST) in moving_mnist / moving_shapes.",
    "num_shapes": "Sprites per Moving Shapes sequence.",
    "eval_future": "Frames predicted in evaluation (0: --n_future).",
    "eval_sequences": "Test sequences (or examples) evaluated.",
    "eval_samples": "Samples per test sequence (best-of-N) or importance samples.",
    "eval_ssim": "SSIM convention picking the best-of-N sample of video models: gaussian "
                 "(window 11) or svg (SVG's 7x7 box window, data_range 2); both are "
                 "reported. Alias: --ssim.",
    "generation_batchnorm": "BatchNorm statistics when video models generate for evaluation: "
                            "moving (moving averages) or batch (batch statistics, as "
                            "SVG's generate script).",
    "classifier_examples": "Training examples of the coherence classifier (multimodal eval).",
    "classifier_epochs": "Epochs of the coherence classifier (multimodal eval).",
    "eval_after_training": "After training, write <model_dir>/metrics.json and "
                           "<model_dir>/samples/ (PNGs; a GIF for video models).",
}
_ENUMS = {"strategy": configs.STRATEGIES, "mixed_precision": configs.MIXED_PRECISION,
          "jit_compile": configs.JIT_COMPILE, "optimizer": configs.OPTIMIZERS,
          "image_likelihood": configs.IMAGE_LIKELIHOODS,
          "image_network": configs.IMAGE_NETWORKS, "eval_ssim": configs.SSIM_CONVENTIONS,
          "generation_batchnorm": configs.GENERATION_BATCHNORM}
# Short names: alias -> Config flag (absl aliases set the aliased flag).
ALIASES = {"ssim": "eval_ssim"}
CONFIG_FLAGS = tuple(f.name for f in dataclasses.fields(configs.Config))


def _define_once(define, name, *args, **kwargs):
  if name not in FLAGS:
    define(name, *args, **kwargs)


def define_config_flags():
  """Defines --preset, one flag per Config field and the `ALIASES` (idempotent)."""
  _define_once(flags.DEFINE_string, "preset", "",
               f"Named preset giving the defaults: one of {sorted(configs.PRESETS)}; "
               "flags given explicitly override it.")
  defaults = configs.Config()
  for field in dataclasses.fields(configs.Config):
    name, default = field.name, getattr(defaults, field.name)
    help_text = HELP[name]
    if name in _ENUMS:
      _define_once(flags.DEFINE_enum, name, default, list(_ENUMS[name]), help_text)
    elif name == "hidden_units":
      _define_once(flags.DEFINE_list, name, [str(u) for u in default], help_text)
    elif name == "model_options":
      _define_once(flags.DEFINE_list, name, [], help_text)
    elif name == "discriminator_learning_rate":
      _define_once(flags.DEFINE_float, name, None, help_text)
    elif isinstance(default, bool):
      _define_once(flags.DEFINE_bool, name, default, help_text)
    elif isinstance(default, int):
      _define_once(flags.DEFINE_integer, name, default, help_text)
    elif isinstance(default, float):
      _define_once(flags.DEFINE_float, name, default, help_text)
    else:
      _define_once(flags.DEFINE_string, name, default, help_text)
  for alias, name in ALIASES.items():
    _define_once(flags.DEFINE_alias, alias, name)


def parse_model_options(items):
  """["k=v", ...] -> {k: json(v) or the string v}."""
  merged = []
  for item in items:  # absl splits on every comma: re-join JSON lists like [1,2].
    if "=" not in item and merged:
      merged[-1] += "," + item
    else:
      merged.append(item)
  out = {}
  for item in merged:
    if "=" not in item:
      raise configs.ConfigError(f"--model_options entry {item!r} is not key=value")
    key, value = item.split("=", 1)
    try:
      out[key.strip()] = json.loads(value)
    except json.JSONDecodeError:
      out[key.strip()] = value
  return out


def _flag_value(name):
  value = FLAGS[name].value
  if name == "hidden_units":
    try:
      return tuple(int(u) for u in value)
    except ValueError as e:
      raise configs.ConfigError(f"--hidden_units must be integers, got {value}") from e
  if name == "model_options":
    return parse_model_options(value)
  return value


def explicit_overrides():
  """{field: value} of Config flags given on the command line or in a flagfile."""
  return {name: _flag_value(name) for name in CONFIG_FLAGS if FLAGS[name].present}


def config_from_flags():
  """The Config of the parsed flags: preset, then explicit flags. Validated."""
  base = configs.get_preset(FLAGS.preset) if FLAGS.preset else configs.Config()
  return configs.validate(base.replace(**explicit_overrides()))


def fail(message, program=None):
  """Prints `<program>: error: <message>` (one line) and exits with status 2."""
  program = program or _program()
  print(f"{program}: error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(EXIT_BAD_INPUT)


def _program():
  import os  # pylint: disable=g-import-not-at-top
  return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "tfmvae"


def parse_flags(argv):
  """absl `flags_parser`: unknown or bad flags give one line and exit status 2."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    fail(str(e).splitlines()[0] if str(e) else type(e).__name__)


def register_key_flags(names):
  """Lists the flags in --help of a console-script wrapper (absl keys on argv[0])."""
  for name in names:
    if sys.argv and name in FLAGS:
      FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])


def saved_config_from_flags():
  """eval/sample: the Config saved in --model_dir, with explicit flags applied.

  Fields that may change between runs (`configs.RESUMABLE_FIELDS`, e.g.
  --eval_samples, --data_dir) override the saved value; any other explicit flag
  must agree with it (a flagfile of the same experiment does).
  """
  if not FLAGS.model_dir:
    raise configs.ConfigError("--model_dir is required")
  from tfmvae import train_lib  # pylint: disable=g-import-not-at-top
  saved = train_lib.read_config(FLAGS.model_dir)
  if saved is None:
    raise configs.ConfigError(f"--model_dir={FLAGS.model_dir} has no "
                              f"{train_lib.CONFIG_FILE}: not a training directory")
  overrides = explicit_overrides()
  overrides.pop("model_dir", None)
  config = saved.replace(model_dir=FLAGS.model_dir, **overrides)
  diff = configs.incompatible_fields(saved, config)
  if diff:
    what = "; ".join(f"{n}: saved {a!r}, flag {b!r}" for n, a, b in diff)
    raise configs.ConfigError(f"--model_dir={FLAGS.model_dir} holds a different model ({what})")
  return configs.validate(config)
