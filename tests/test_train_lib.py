"""train_lib in-process: training, summaries, resume, atomic checkpoints, bad input."""
import hashlib
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae import configs
from tfmvae import train_lib
from tfmvae.configs import ConfigError

SMOKE = configs.PRESETS["smoke"]


def _tree_digest(path):
  """Hash of every file's name and content under path (to prove nothing changed)."""
  h = hashlib.sha256()
  for p in sorted(pathlib.Path(path).rglob("*")):
    if p.is_file():
      h.update(str(p).encode())
      h.update(p.read_bytes())
  return h.hexdigest()


def _events(model_dir):
  tags = {}
  for path in (pathlib.Path(model_dir) / "train").glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append((event.step, value))
  return tags


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("smoke") / "run"
  config = SMOKE.replace(model_dir=str(model_dir), steps=4)
  model, history = train_lib.train(config, verbose=0)
  return config, model, history


def test_train_writes_checkpoints_summaries_and_config(trained):
  config, model, history = trained
  assert int(model.train_steps.numpy()) == 4
  assert int(model.optimizer.iterations.numpy()) == 4
  assert np.isfinite(history.history["loss"]).all()
  assert train_lib.read_config(config.model_dir) == config
  assert tf.train.latest_checkpoint(config.model_dir).endswith("ckpt-4")
  reader = tf.train.load_checkpoint(config.model_dir)
  assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4
  tags = _events(config.model_dir)
  for name in ("loss", "kl", "elbo", "nll_image", "nll_attributes", "kl_weight"):
    assert [s for s, _ in tags[name]] == [2, 4], name  # summary_every=2
  # KLWarmup sets beta * min(1, t / 4) before the batch that makes t + 1 steps.
  assert float(tf.make_ndarray(tags["kl_weight"][0][1].tensor)) == pytest.approx(0.25)
  for name in ("prior_samples", "cross_modal", "reconstruction"):
    steps = [s for s, _ in tags[name]]
    assert steps == [3, 4], name  # image_every=3, plus the end of training
    png = tf.make_ndarray(tags[name][0][1].tensor)[2]
    assert png[:4] == b"\x89PNG"


def test_resume_restores_step_optimizer_and_warmup(trained, tmp_path):
  config, _, _ = trained
  reader = tf.train.load_checkpoint(config.model_dir)
  names = reader.get_variable_to_shape_map()
  slot_keys = sorted(k for k in names if k.startswith(("optimizer/_variables/",
                                                          "optimizer/_iterations/")))
  assert slot_keys, "Adam slots must be in the checkpoint"
  seen = {}

  class Probe(keras.callbacks.Callback):

    def on_train_begin(self, logs=None):
      opt = self.model.optimizer
      seen["iterations"] = int(opt.iterations.numpy())
      seen["train_steps"] = int(self.model.train_steps.numpy())
      seen["kl_weight"] = float(self.model.kl_weight.numpy())
      seen["slots"] = [np.array(v.numpy()) for v in opt.variables
                       if v.name != "learning_rate"]

  resumed = config.replace(steps=6)
  model, history = train_lib.train(resumed, verbose=0, callbacks=[Probe()])
  assert seen["iterations"] == 4 and seen["train_steps"] == 4
  assert seen["kl_weight"] == pytest.approx(1.0)  # warm-up (4 steps) finished.
  saved = [reader.get_tensor(k) for k in slot_keys]
  # Every optimizer variable (iterations, Adam's m and v) restored
  # exactly (compared as multisets of sums: checkpoint keys are ordered differently).
  assert len(saved) == len(seen["slots"])
  assert sorted(float(np.sum(np.abs(s))) for s in saved) == pytest.approx(
      sorted(float(np.sum(np.abs(s))) for s in seen["slots"]), rel=1e-6)
  assert any(np.abs(s).sum() > 0 for s in saved)
  assert int(model.optimizer.iterations.numpy()) == 6
  assert len(history.history["loss"]) == 1  # Only epoch 2 (steps 4..6) ran.
  assert tf.train.latest_checkpoint(config.model_dir).endswith("ckpt-6")


def test_half_written_checkpoint_is_never_picked_up(trained, tmp_path):
  config, _, _ = trained
  model_dir = tmp_path / "copy"
  model_dir.mkdir()
  for p in pathlib.Path(config.model_dir).iterdir():
    if p.is_file():
      (model_dir / p.name).write_bytes(p.read_bytes())
  latest = tf.train.latest_checkpoint(str(model_dir))
  # What a kill during `CheckpointManager.save` can leave: the temporary shard
  # folder and a truncated data file of the next checkpoint, no state-file entry.
  (model_dir / "ckpt-99_temp").mkdir()
  (model_dir / "ckpt-99_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
  (model_dir / "ckpt-99.data-00000-of-00001").write_bytes(b"truncated")
  assert tf.train.latest_checkpoint(str(model_dir)) == latest
  model, _, step = train_lib.load_model(str(model_dir), config.replace(model_dir=str(model_dir)))
  assert step == int(latest.rsplit("-", 1)[1])


def test_state_file_is_updated_after_the_data_is_complete(tmp_path, monkeypatch):
  """TF's ordering that resume relies on: shards + index first, state file last."""
  from tensorflow.python.checkpoint import checkpoint_management as cm  # pylint: disable=g-direct-tensorflow-import
  calls = []
  original = cm.update_checkpoint_state_internal

  def spy(save_dir, model_checkpoint_path, *args, **kwargs):
    prefix = pathlib.Path(save_dir) / pathlib.Path(model_checkpoint_path).name
    calls.append((prefix.with_name(prefix.name + ".index").is_file(),
                  any(prefix.parent.glob(prefix.name + ".data-*")),
                  any(prefix.parent.glob(prefix.name + "_temp*"))))
    return original(save_dir, model_checkpoint_path, *args, **kwargs)

  monkeypatch.setattr(cm, "update_checkpoint_state_internal", spy)
  v = tf.Variable(1.0)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(tmp_path), 2)
  manager.save(checkpoint_number=1)
  assert calls and all(c == (True, True, False) for c in calls)


def test_model_dir_with_another_model_is_refused_untouched(trained):
  config, _, _ = trained
  before = _tree_digest(config.model_dir)
  with pytest.raises(ConfigError, match="holds a different model .*latent_dim"):
    train_lib.train(config.replace(latent_dim=5, steps=8), verbose=0)
  assert _tree_digest(config.model_dir) == before


def test_bad_image_size_and_missing_data_write_nothing(tmp_path):
  bad = SMOKE.replace(model="svg_lp", dataset="moving_shapes", image_size=40,
                      kl_warmup_steps=0, model_dir=str(tmp_path / "a"))
  with pytest.raises(ConfigError, match="image_size=40"):
    train_lib.train(bad, verbose=0)
  empty = tmp_path / "empty"
  empty.mkdir()
  missing = SMOKE.replace(dataset="mnist_pairs", image_size=28, data_dir=str(empty),
                          model_dir=str(tmp_path / "b"))
  with pytest.raises(ConfigError, match="cannot read dataset 'mnist_pairs'"):
    train_lib.train(missing, verbose=0)
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unavailable_family_is_a_config_error(tmp_path):
  configs.register_model("not_written_yet", "video", "tfmvae.models.no_such_module:build")
  try:
    with pytest.raises(ConfigError, match="cannot import tfmvae.models.no_such_module"):
      train_lib.build_model(SMOKE.replace(model="not_written_yet", dataset="moving_shapes"))
  finally:
    del configs.MODELS["not_written_yet"]


def test_video_model_trains_evaluates_and_writes_gif(tmp_path):
  config = configs.Config(
      model="svg_lp", dataset="moving_shapes", image_size=16, channels=1, batch_size=4,
      n_past=2, n_future=2, eval_future=3, latent_dim=2, steps=2, steps_per_epoch=2,
      checkpoint_every=2, summary_every=1, image_every=2, eval_sequences=4, eval_samples=2,
      model_options={"g_dim": 8, "rnn_size": 8, "filters": 4},
      model_dir=str(tmp_path / "video"), eval_after_training=True)
  model, _ = train_lib.train(config, verbose=0)
  assert int(model.optimizer.iterations.numpy()) == 2
  tags = _events(config.model_dir)
  assert {"loss", "mse", "kl", "prediction"} <= set(tags)
  metrics = (tmp_path / "video" / "metrics.json").read_text()
  assert '"copy_last"' in metrics and '"ssim"' in metrics
  gif = tmp_path / "video" / "samples" / "predictions.gif"
  assert gif.read_bytes()[:3] == b"GIF"
  reloaded, _, step = train_lib.load_model(config.model_dir)
  assert step == 2
  def by_path(m):  # Paths without the model's own (uniquified) name.
    return {w.path.split("/", 1)[1]: w.numpy() for w in m.weights}

  trained_weights, reloaded_weights = by_path(model), by_path(reloaded)
  assert set(trained_weights) == set(reloaded_weights)
  for path, value in trained_weights.items():
    np.testing.assert_array_equal(value, reloaded_weights[path], err_msg=path)


class _RecordingVideoModel:
  """predict -> the last context frame repeated (S copies); records its kwargs."""

  def __init__(self):
    self.kwargs = []

  def predict(self, context, num_future, num_samples=1, seed=None, **kwargs):
    self.kwargs.append(kwargs)
    last = np.asarray(context)[:, None, -1:]  # [B, 1, 1, H, W, C]
    return np.tile(last, (1, num_samples, num_future, 1, 1, 1))


@pytest.mark.parametrize("ssim, batchnorm, kwargs", [
    ("gaussian", "moving", {}), ("svg", "batch", {"batchnorm": "batch"})])
def test_evaluate_video_passes_ssim_and_generation_batchnorm(monkeypatch, ssim, batchnorm,
                                                             kwargs):
  config = configs.Config(model="svg_lp", dataset="moving_shapes", image_size=8, n_past=2,
                          n_future=2, eval_sequences=3, eval_samples=2, eval_ssim=ssim,
                          generation_batchnorm=batchnorm)
  still = np.random.default_rng(0).uniform(size=(3, 1, 8, 8, 1)).astype(np.float32)
  frames = np.repeat(still, 4, axis=1)  # static sequences: copy-last is exact
  monkeypatch.setattr(train_lib, "raw_dataset",
                      lambda c, split, num=None: tf.data.Dataset.from_tensor_slices(frames))
  model = _RecordingVideoModel()
  out = train_lib.evaluate(model, config)
  assert model.kwargs == [kwargs]  # "moving" (the default) passes nothing
  assert out["config"]["ssim"] == ssim and out["config"]["predict_kwargs"] == kwargs
  assert {"best", "best_per_metric"} <= set(out["summary"])
  assert out["summary"]["best"]["ssim_svg_all"] == pytest.approx(1.0, abs=1e-6)  # copy-last


def test_make_modalities_honours_image_network():
  base = configs.PRESETS["mnist_mvae"].replace(image_network="auto")
  assert train_lib.make_modalities(base)[0].resolved_network == "conv"  # "auto"
  assert train_lib.make_modalities(configs.PRESETS["mnist_mvae"])[0].network == "mlp"
  image, label = train_lib.make_modalities(base.replace(image_network="mlp"))
  assert image.resolved_network == "mlp" and image.hidden_units == (512, 512)
  assert label.resolved_network == "mlp"
  assert train_lib.make_modalities(base.replace(image_network="conv"))[0].network == "conv"


@pytest.mark.parametrize("model_name", ["svg_lp", "video_mvae"])
def test_video_training_under_mixed_precision_and_xla(tmp_path, model_name):
  """The binaries' --mixed_precision=float16 --jit_compile=true path for video models:
  trains, evaluates (rollout in float16 frame nets), reloads; the policy is restored."""
  config = configs.Config(
      model=model_name, dataset="moving_shapes", image_size=16, channels=1, batch_size=4,
      n_past=2, n_future=2, eval_future=3, latent_dim=2, steps=2, steps_per_epoch=2,
      checkpoint_every=2, summary_every=1, image_every=2, eval_sequences=4, eval_samples=2,
      model_options={"g_dim": 8, "rnn_size": 8, "filters": 4},
      mixed_precision="float16", jit_compile="true",
      model_dir=str(tmp_path / "video"), eval_after_training=True)
  model, history = train_lib.train(config, verbose=0)
  assert keras.mixed_precision.global_policy().name == "float32"
  assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
  assert all(np.all(np.isfinite(v)) for v in history.history.values())
  metrics = (tmp_path / "video" / "metrics.json").read_text()
  assert '"copy_last"' in metrics and "NaN" not in metrics
  # Reloading (what tfmvae-eval / -sample / -export do) rebuilds under the run's policy.
  reloaded, _, step = train_lib.load_model(config.model_dir)
  assert step == 2
  assert keras.mixed_precision.global_policy().name == "float32"
  assert isinstance(reloaded.optimizer, keras.optimizers.LossScaleOptimizer)
  context = np.random.default_rng(0).uniform(size=(2, 2, 16, 16, 1)).astype(np.float32)
  np.testing.assert_array_equal(model.predict(context, 3, num_samples=2, seed=1),
                                reloaded.predict(context, 3, num_samples=2, seed=1))
