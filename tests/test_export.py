"""Tests of tfmvae.export and the tfmvae-export binary (tiny models, 16x16 frames).

Exported outputs are compared with the Keras model's own outputs for the same
inputs and seed. Tolerance 1e-5 absolute: the graph runs the same float32 ops as
eager Keras; only op fusion/ordering (oneDNN) may change the last bits.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae import export
from tfmvae import modalities as mods
from tfmvae.models.mvae import MVAE
from tfmvae.models.svg import SVG
from tfmvae.models.vaegan import VAEGAN
from tfmvae.models.video_mvae import VideoMVAE

ATOL = 1e-5
# Signature family of each test model.
KIND = {"mvae": "mvae", "vaegan": "mvae", "svg": "video", "video_mvae": "video"}
SIZE = 16
FUTURE = 3
SEED = np.array([7, 11], np.int32)


def tiny_mvae(**kwargs):
  return MVAE([mods.image(shape=(SIZE, SIZE, 1), hidden_units=(16,), filters=4),
               mods.label(10, hidden_units=(16,))], latent_dim=4, seed=0, **kwargs)


def tiny_vaegan():
  return VAEGAN([mods.image(shape=(SIZE, SIZE, 1), hidden_units=(16,), filters=4),
                 mods.label(10, hidden_units=(16,))], latent_dim=4, discriminator_filters=4,
                feature_layer=2, discriminator_hidden_units=8, seed=0)


def tiny_svg():
  return SVG(image_size=SIZE, channels=1, g_dim=8, z_dim=2, rnn_size=8, filters=4,
             predictor_layers=1, n_past=2, seed=0)


def tiny_video_mvae():
  return VideoMVAE(prior="learned", image_size=SIZE, channels=1, g_dim=8, z_dim=2,
                   rnn_size=8, filters=4, n_past=2, seed=0)


def frames(batch, time=3, seed=0):
  return np.random.default_rng(seed).random((batch, time, SIZE, SIZE, 1), np.float32)


def mvae_inputs(batch, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.random((batch, SIZE, SIZE, 1), np.float32)
  label = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
  mask = np.ones((batch, 2), np.float32)
  mask[0, 1] = 0.0  # First example: image only (label -> generated from the image).
  if batch > 1:
    mask[1, 0] = 0.0  # Second: label only.
  return {"image": image, "label": label, "mask": mask}


def keras_outputs(model, kind, batch):
  """What each signature must return, computed through the Keras model."""
  if kind == "mvae":
    x = mvae_inputs(batch)
    loc, scale = model.encode(x)
    return {
        "infer": model.reconstruct(x),
        "encode": {"loc": loc, "scale": scale},
        "generate": model.generate(x, num_samples=2, seed=SEED),
        "sample": model.sample(batch, seed=SEED),
    }
  x = frames(batch)
  return {
      "predict_next_frames": {"frames": model.predict(x, FUTURE, seed=SEED)[:, 0]},
      "sample_next_frames": {"frames": model.predict(x, FUTURE, num_samples=2, seed=SEED)},
  }


def signature_inputs(kind, batch):
  """Keyword inputs of each signature (numpy), matching `keras_outputs`."""
  if kind == "mvae":
    x = mvae_inputs(batch)
    return {
        "infer": x, "encode": x,
        "generate": dict(x, num_samples=np.int32(2), seed=SEED),
        "sample": {"num_samples": np.int32(batch), "seed": SEED},
    }
  x = frames(batch)
  return {
      "predict_next_frames": {"frames": x, "num_future": np.int32(FUTURE), "seed": SEED},
      "sample_next_frames": {"frames": x, "num_future": np.int32(FUTURE),
                             "num_samples": np.int32(2), "seed": SEED},
  }


def assert_outputs_close(got, want, what):
  assert set(got) == set(want), f"{what}: outputs {sorted(got)} != {sorted(want)}"
  for key in want:
    np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), atol=ATOL,
                               err_msg=f"{what}: output {key!r}")


@pytest.fixture(scope="module")
def models():
  keras.utils.set_random_seed(0)
  return {"mvae": tiny_mvae(), "vaegan": tiny_vaegan(), "svg": tiny_svg(),
          "video_mvae": tiny_video_mvae()}


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
  base = tmp_path_factory.mktemp("exported")
  return {kind: export.export_model(model, base, kind, max_future=5, max_samples=4)
          for kind, model in models.items()}


@pytest.fixture(scope="module")
def loaded(exported):
  return {kind: tf.saved_model.load(path) for kind, path in exported.items()}


# ------------------------------------------------------------------ signatures
def test_signatures_have_named_float32_io_and_dynamic_batch(loaded):
  expected = {
      "mvae": {"infer", "encode", "generate", "sample", "serving_default"},
      "video": {"predict_next_frames", "sample_next_frames", "serving_default"},
  }
  for kind, obj in loaded.items():
    assert set(obj.signatures) == expected[KIND[kind]], kind
    for name, fn in obj.signatures.items():
      args, kwargs = fn.structured_input_signature
      assert not args
      for key, spec in kwargs.items():
        want = tf.int32 if key in ("num_future", "num_samples", "seed") else tf.float32
        assert spec.dtype == want, (kind, name, key)
        if spec.dtype == tf.float32:
          assert spec.shape[0] is None, f"{kind}/{name}/{key}: batch must be dynamic"
      assert isinstance(fn.structured_outputs, dict)
      for key, spec in fn.structured_outputs.items():
        assert spec.dtype == tf.float32, (kind, name, key)
  # serving_default aliases predict_next_frames (video) and infer (multimodal).
  assert set(loaded["svg"].signatures["serving_default"].structured_input_signature[1]) == {
      "frames", "num_future", "seed"}
  assert set(loaded["mvae"].signatures["serving_default"].structured_input_signature[1]) == {
      "image", "label", "mask"}


def test_metadata_file(exported):
  meta = export.read_metadata(exported["svg"])
  assert meta["kind"] == "video" and meta["class"] == "SVG"
  assert meta["frame_shape"] == [SIZE, SIZE, 1] and meta["max_future"] == 5
  assert meta["serving_default"] == "predict_next_frames"
  meta = export.read_metadata(exported["mvae"])
  assert meta["modalities"] == [{"name": "image", "shape": [SIZE, SIZE, 1]},
                                {"name": "label", "shape": [10]}]


@pytest.mark.parametrize("batch", [1, 3])
def test_outputs_match_keras(models, loaded, batch):
  for kind, model in models.items():
    key = KIND[kind]
    want = keras_outputs(model, key, batch)
    inputs = signature_inputs(key, batch)
    for name in want:
      got = loaded[kind].signatures[name](**{k: tf.constant(v) for k, v in inputs[name].items()})
      assert_outputs_close(got, want[name], f"{kind}/{name} batch {batch}")
  # Output shapes stated in the docs.
  out = loaded["svg"].signatures["predict_next_frames"](
      frames=tf.constant(frames(batch)), num_future=tf.constant(FUTURE), seed=tf.constant(SEED))
  assert out["frames"].shape == (batch, FUTURE, SIZE, SIZE, 1)


def test_seed_determinism(loaded):
  fn = loaded["video_mvae"].signatures["predict_next_frames"]
  x = tf.constant(frames(2))
  a = fn(frames=x, num_future=tf.constant(4), seed=tf.constant([1, 2]))["frames"].numpy()
  b = fn(frames=x, num_future=tf.constant(4), seed=tf.constant([1, 2]))["frames"].numpy()
  c = fn(frames=x, num_future=tf.constant(4), seed=tf.constant([3, 4]))["frames"].numpy()
  np.testing.assert_array_equal(a, b)
  # Untrained tiny nets output ~0.5 whatever z is, so differences are small but nonzero.
  assert not np.array_equal(a, c), "a different seed must give a different sample"
  sample = loaded["mvae"].signatures["sample"]
  a = sample(num_samples=tf.constant(3), seed=tf.constant([5, 5]))["image"].numpy()
  b = sample(num_samples=tf.constant(3), seed=tf.constant([5, 5]))["image"].numpy()
  c = sample(num_samples=tf.constant(3), seed=tf.constant([5, 6]))["image"].numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


# ------------------------------------------------------------------ bad requests
def _call(fn, **inputs):
  return fn(**{k: tf.constant(v) for k, v in inputs.items()})


@pytest.mark.parametrize("change, message", [
    (dict(frames=frames(1)[:, :, :8]), "expected frame height 16"),
    (dict(frames=frames(1)[:, :, :, :8]), "expected frame width 16"),
    (dict(frames=np.concatenate([frames(1)] * 3, axis=-1)), "expected 1 channel(s)"),
    (dict(frames=frames(1, time=1)), "at least 2 context frames"),
    (dict(num_future=np.int32(0)), "num_future must be >= 1"),
    (dict(num_future=np.int32(6)), "num_future must be <= 5"),
])
def test_bad_video_requests_fail_clearly(loaded, change, message):
  inputs = dict(frames=frames(1), num_future=np.int32(2), seed=SEED)
  inputs.update(change)
  with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("(", r"\(")
                     .replace(")", r"\)")):
    _call(loaded["svg"].signatures["predict_next_frames"], **inputs)


def test_bad_multimodal_requests_fail_clearly(loaded):
  sigs = loaded["mvae"].signatures
  x = mvae_inputs(2)
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"image: expected shape \[batch, "
                     r"16, 16, 1\], wrong size on axis 1"):
    _call(sigs["infer"], **dict(x, image=np.zeros((2, 8, SIZE, 1), np.float32)))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"mask: expected shape \[batch, 2\]"):
    _call(sigs["encode"], **dict(x, mask=np.ones((2, 3), np.float32)))
  with pytest.raises(tf.errors.InvalidArgumentError, match="label: batch size differs"):
    _call(sigs["infer"], **dict(x, label=x["label"][:1]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be <= 4"):
    _call(sigs["sample"], num_samples=np.int32(5), seed=SEED)
  with pytest.raises(tf.errors.InvalidArgumentError, match="num_samples must be >= 1"):
    _call(sigs["generate"], **dict(x, num_samples=np.int32(0), seed=SEED))


# ------------------------------------------------------------------ no XLA
def _xla_marked(saved_model_dir):
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  marked = []
  for meta_graph in proto.meta_graphs:
    graph = meta_graph.graph_def
    for fn in graph.library.function:
      if fn.attr["_XlaMustCompile"].b:
        marked.append(fn.signature.name)
      marked += [n.name for n in fn.node_def if n.attr["_XlaMustCompile"].b]
    marked += [n.name for n in graph.node if n.attr["_XlaMustCompile"].b]
  return marked


def test_no_xla_marked_functions(exported, tmp_path):
  for kind, path in exported.items():
    assert _xla_marked(path) == [], kind
  # The check does see an XLA-marked function (so it can fail).
  module = tf.Module()
  module.f = tf.function(lambda x: x * 2.0, jit_compile=True,
                         input_signature=[tf.TensorSpec([None], tf.float32)])
  tf.saved_model.save(module, str(tmp_path / "xla"))
  assert _xla_marked(str(tmp_path / "xla"))


def test_mixed_precision_model_keeps_float32_io(tmp_path):
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    model = tiny_mvae()
  finally:
    keras.config.set_dtype_policy(previous)
  assert model.encoders[0].compute_dtype == "float16"
  obj = tf.saved_model.load(export.export_model(model, tmp_path, "mixed"))
  for name, fn in obj.signatures.items():
    for key, spec in fn.structured_input_signature[1].items():
      assert spec.dtype == (tf.int32 if key in ("num_samples", "seed") else tf.float32)
    assert all(s.dtype == tf.float32 for s in fn.structured_outputs.values()), name
  x = mvae_inputs(2)
  got = obj.signatures["generate"](**{k: tf.constant(v) for k, v in x.items()},
                                   num_samples=tf.constant(2), seed=tf.constant(SEED))
  want = model.generate(x, num_samples=2, seed=SEED)
  # float16 activations on both sides; the graph may fuse ops differently, so allow
  # float16 rounding noise (eps 1e-3) on outputs of order 1.
  for key in want:
    np.testing.assert_allclose(got[key].numpy(), np.asarray(want[key]), atol=2e-3)


# ------------------------------------------------------------------ outside tfmvae
_SUBPROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    inputs = np.load(sys.argv[1], allow_pickle=True).item()
    results = {}
    for kind, path in inputs["paths"].items():
      obj = tf.saved_model.load(path)
      for batch in (1, 3):
        for name, kwargs in inputs[kind][batch].items():
          out = obj.signatures[name](**{k: tf.constant(v) for k, v in kwargs.items()})
          results[(kind, batch, name)] = {k: v.numpy() for k, v in out.items()}
    assert "tfmvae" not in sys.modules, sorted(m for m in sys.modules if "tfmvae" in m)
    np.save(sys.argv[2], results, allow_pickle=True)
    print("OK no tfmvae")
    """)


def test_loads_and_runs_without_tfmvae(models, exported, tmp_path):
  kinds = ("mvae", "svg")  # VideoMVAE's graph is built the same way (checked in-process).
  inputs = {"paths": {kind: exported[kind] for kind in kinds}}
  for kind in kinds:
    key = KIND[kind]
    inputs[kind] = {batch: signature_inputs(key, batch) for batch in (1, 3)}
  np.save(tmp_path / "in.npy", inputs, allow_pickle=True)
  script = tmp_path / "load.py"
  script.write_text(_SUBPROCESS)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, str(script), str(tmp_path / "in.npy"),
                         str(tmp_path / "out.npy")], cwd=str(tmp_path), env=env,
                        capture_output=True, text=True, timeout=240, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "OK no tfmvae" in proc.stdout
  results = np.load(tmp_path / "out.npy", allow_pickle=True).item()
  for kind in kinds:
    model = models[kind]
    key = KIND[kind]
    for batch in (1, 3):
      for name, want in keras_outputs(model, key, batch).items():
        assert_outputs_close(results[(kind, batch, name)], want, f"{kind}/{name} batch {batch}")


def _saved_model_cli(*args):
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=240,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.mark.parametrize("kind, signature", [("svg", "predict_next_frames"),
                                             ("mvae", "generate")])
def test_saved_model_cli_run(models, exported, tmp_path, kind, signature):
  key = KIND[kind]
  inputs = signature_inputs(key, 3)[signature]
  files = []
  for name, value in inputs.items():
    np.save(tmp_path / f"{name}.npy", value)
    files.append(f"{name}={tmp_path / (name + '.npy')}")
  out_dir = tmp_path / "out"
  _saved_model_cli("run", "--dir", exported[kind], "--tag_set", "serve", "--signature_def",
                   signature, "--inputs", ";".join(files), "--outdir", str(out_dir))
  want = keras_outputs(models[kind], key, 3)[signature]
  got = {k: np.load(out_dir / f"{k}.npy") for k in want}
  assert_outputs_close(got, want, f"saved_model_cli {kind}/{signature}")


# ------------------------------------------------------------------ versions and atomicity
def _versions(base):
  return sorted(os.listdir(base))


def test_versions_and_overwrite(models, exported, tmp_path):
  model = models["svg"]
  base = tmp_path / "m"
  first = export.export_model(model, tmp_path, "m")
  assert os.path.basename(first) == "1"
  shutil.copytree(exported["svg"], base / "7")  # An existing version 7 (from elsewhere).
  assert export.list_versions(base) == [1, 7]
  assert os.path.basename(export.export_model(model, tmp_path, "m")) == "8"
  assert os.path.isfile(base / "8" / "saved_model.pb")
  stamp = base / "7" / "assets.extra" / "marker"
  stamp.write_text("old")
  with pytest.raises(FileExistsError, match="overwrite"):
    export.export_model(model, tmp_path, "m", version=7)
  assert stamp.exists(), "a refused export must leave the version untouched"
  assert export.export_model(model, tmp_path, "m", version=7, overwrite=True) == str(base / "7")
  assert not stamp.exists(), "overwrite must replace the whole version"
  assert os.path.isfile(base / "7" / "saved_model.pb")
  assert _versions(base) == ["1", "7", "8"]  # No temporary leftovers.
  with pytest.raises(ValueError, match="model name"):
    export.export_model(model, tmp_path, "../escape")
  with pytest.raises(ValueError, match="positive integer"):
    export.export_model(model, tmp_path, "m", version=0)


def test_interrupted_export_leaves_no_partial_version(models, exported, tmp_path,
                                                      monkeypatch):
  model = models["mvae"]
  shutil.copytree(exported["mvae"], tmp_path / "m" / "1")  # Version 1 exists.
  old = tf.saved_model.load(os.path.join(tmp_path, "m", "1"))
  want = old.signatures["sample"](num_samples=tf.constant(2), seed=tf.constant(SEED))
  calls = []

  def fail_after_savedmodel(path, metadata):
    # The SavedModel has been written in full; the export dies before it is renamed.
    calls.append(path)
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    raise KeyboardInterrupt("simulated interruption mid-export")

  monkeypatch.setattr(export, "_write_metadata", fail_after_savedmodel)
  with pytest.raises(KeyboardInterrupt):
    export.export_model(model, tmp_path, "m")
  with pytest.raises(KeyboardInterrupt):
    export.export_model(tiny_mvae(), tmp_path, "m", version=1, overwrite=True)
  assert len(calls) == 2
  assert _versions(tmp_path / "m") == ["1"], "no version 2, no temporary directory"
  # Version 1 is the original, complete export.
  again = tf.saved_model.load(os.path.join(tmp_path, "m", "1"))
  got = again.signatures["sample"](num_samples=tf.constant(2), seed=tf.constant(SEED))
  assert_outputs_close(got, want, "version 1 after failed overwrite")

  def partial_write(self, path, **kwargs):
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(b"\x08partial")
    raise OSError("disk full")

  monkeypatch.undo()
  monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", partial_write)
  with pytest.raises(OSError, match="disk full"):
    export.export_model(model, tmp_path, "m")
  assert _versions(tmp_path / "m") == ["1"]


def test_export_rejects_other_models():
  with pytest.raises(TypeError, match="cannot export a Sequential"):
    export.export_model(keras.Sequential([keras.layers.Dense(1)]), "/nonexistent", "x")


# ------------------------------------------------------------------ the binary
def _cli(*args, cwd):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "tfmvae.bin.export", *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=240, check=False)


def test_cli_exports_a_keras_file(models, tmp_path):
  path = str(tmp_path / "svg.keras")
  models["svg"].save(path)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = _cli(f"--model_dir={path}", f"--export_dir={tmp_path / 'exp'}", "--name=svg",
              "--max_future=7", cwd=repo)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Exported SVG to" in proc.stdout and "predict_next_frames" in proc.stdout
  version = tmp_path / "exp" / "svg" / "1"
  assert export.read_metadata(version)["max_future"] == 7
  obj = tf.saved_model.load(str(version))
  got = obj.signatures["predict_next_frames"](
      frames=tf.constant(frames(2)), num_future=tf.constant(FUTURE), seed=tf.constant(SEED))
  assert_outputs_close(got, keras_outputs(models["svg"], "video", 2)["predict_next_frames"],
                       "CLI export")
  # An existing version without --overwrite: one-line error, exit 2, nothing written.
  proc = _cli(f"--model_dir={path}", f"--export_dir={tmp_path / 'exp'}", "--name=svg",
              "--version=1", cwd=repo)
  assert proc.returncode == 2
  assert "exists; pass --overwrite" in proc.stderr
  proc = _cli(f"--model_dir={tmp_path / 'missing'}", f"--export_dir={tmp_path / 'exp'}",
              "--name=svg", cwd=repo)
  assert proc.returncode == 2 and "no model at" in proc.stderr
  assert sorted(os.listdir(tmp_path / "exp" / "svg")) == ["1"]


def test_cli_exports_a_training_model_dir(tmp_path):
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from tfmvae import configs  # pylint: disable=g-import-not-at-top
  from tfmvae import train_lib  # pylint: disable=g-import-not-at-top
  from tfmvae.bin import export as export_bin  # pylint: disable=g-import-not-at-top
  # A model_dir as tfmvae-train leaves it: config.json + a CheckpointManager checkpoint.
  model_dir = tmp_path / "run"
  config = configs.get_preset("smoke", model_dir=str(model_dir))
  model = train_lib.build_model(config)
  train_lib.compile_model(model, config)
  train_lib.build_optimizers(model)
  train_lib.write_config(config)
  tf.train.CheckpointManager(train_lib.make_checkpoint(model), str(model_dir),
                             max_to_keep=1).save()
  with flagsaver.flagsaver():
    argv = export_bin.FLAGS(["tfmvae-export", f"--model_dir={model_dir}",
                             f"--export_dir={tmp_path / 'exp'}", "--name=smoke"])
    assert export_bin.main(argv) == 0
  obj = tf.saved_model.load(str(tmp_path / "exp" / "smoke" / "1"))
  names = model.modality_names
  rng = np.random.default_rng(0)
  x = {m.name: rng.random((2,) + m.shape, np.float32) for m in model.modalities}
  x["mask"] = np.ones((2, len(names)), np.float32)
  got = obj.signatures["infer"](**{k: tf.constant(v) for k, v in x.items()})
  # Equal to the checkpointed model (a freshly built one has other random weights).
  assert_outputs_close(got, model.reconstruct(x), "model_dir export")
