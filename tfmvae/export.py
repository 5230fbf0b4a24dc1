"""Exports tfmvae models as versioned TF Serving SavedModels.

`export_model(model, export_dir, name)` writes `<export_dir>/<name>/<version>/`
(`saved_model.pb`, `variables/`, `assets.extra/tfmvae_export.json`), the layout
TF Serving watches under `--model_base_path=<export_dir>/<name>`. The SavedModel
is built with `keras.export.ExportArchive` and holds plain TensorFlow graphs: it
loads with `tf.saved_model.load` (or TF Serving) without tfmvae installed.

Signatures (all inputs and outputs float32 except the int32 counts and seeds; the
batch dimension B is dynamic; outputs are dicts of named tensors):

Video models (`predict(context, num_future, num_samples, seed)` models: SVG,
VideoMVAE, ...), frames [B, T, H, W, C] in [0, 1]:

  predict_next_frames (also serving_default):
      frames [B, T, H, W, C], num_future int32 [], seed int32 [2]
      -> {"frames": [B, num_future, H, W, C]}   one sampled future per sequence
  sample_next_frames:
      frames, num_future, num_samples int32 [], seed int32 [2]
      -> {"frames": [B, num_samples, num_future, H, W, C]}

No video model of tfmvae generates without context frames (SVG and VideoMVAE
start their recurrences from observed frames), so video exports have no
unconditional `generate` signature; `sample_next_frames` is their sampler.

Multimodal models (MVAE, VAEGAN), one input per modality m (shape [B, *shape_m],
zeros where missing) plus "mask" [B, M] (1 = present, columns in modality order):

  infer (also serving_default):  modalities + mask -> {m: [B, *shape_m]}
      every modality decoded from the posterior mean of q(z | present ones):
      reconstruction of the given ones, deterministic cross-modal generation
      of the missing ones;
  encode:    modalities + mask -> {"loc": [B, D], "scale": [B, D]}, q(z | present);
  generate:  modalities + mask, num_samples int32 [], seed int32 [2]
      -> {m: [B, num_samples, *shape_m]}, z ~ q(z | present) decoded (a row whose
      mask is all zeros samples the prior);
  sample:    num_samples int32 [], seed int32 [2] -> {m: [num_samples, *shape_m]},
      z ~ p(z) decoded.

Sampling is stateless: the same seed gives the same output. Frame/modality sizes
are declared dynamic in the signatures and checked inside the graph, so every
client (TF Serving REST or gRPC, saved_model_cli, Python) gets the same clear
InvalidArgumentError naming the input, e.g. "frames: expected frame height 64
(frames are [batch, time, 64, 64, 1])"; `num_future` must lie in [1, max_future],
`num_samples` in [1, max_samples].
No endpoint is XLA-compiled (XLA-marked SavedModels fail on TF Serving GPU,
tensorflow/serving#2214).

Writes are atomic: the SavedModel is written into a hidden temporary directory
`<export_dir>/<name>/.tmp-*` (TF Serving ignores non-integer names) and renamed into
place, so an interrupted export never leaves a half-written version; an existing
version is replaced only with `overwrite=True`.
"""
import datetime
import json
import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

DEFAULT_MAX_FUTURE = 100
DEFAULT_MAX_SAMPLES = 64
METADATA_FILE = os.path.join("assets.extra", "tfmvae_export.json")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ------------------------------------------------------------------ model kinds
def is_video_model(model):
  """A video model overrides `keras.Model.predict` with predict(context, num_future, ...)."""
  return (isinstance(model, keras.Model)
          and type(model).predict is not keras.Model.predict
          and hasattr(model, "image_size") and hasattr(model, "channels"))


def is_multimodal_model(model):
  return (isinstance(model, keras.Model) and hasattr(model, "modalities")
          and hasattr(model, "encode") and hasattr(model, "decode")
          and not is_video_model(model))


def model_kind(model):
  """'video' or 'multimodal'.

  Raises:
    TypeError: for a model that is neither.
  """
  if is_video_model(model):
    return "video"
  if is_multimodal_model(model):
    return "multimodal"
  raise TypeError(
      f"cannot export a {type(model).__name__}: expected a tfmvae video model (with "
      "predict(context, num_future, num_samples, seed), image_size, channels) or a "
      "multimodal model (MVAE / VAEGAN)")


# ------------------------------------------------------------------ in-graph checks
def _checked(x, checks):
  with tf.control_dependencies(checks):
    return tf.identity(x)


def check_count(value, name, maximum):
  """Asserts 1 <= value <= maximum inside the graph (an int32 scalar)."""
  value = tf.convert_to_tensor(value, tf.int32)
  return _checked(value, [
      tf.debugging.assert_greater_equal(
          value, 1, message=f"{name} must be >= 1"),
      tf.debugging.assert_less_equal(
          value, maximum,
          message=f"{name} must be <= {maximum} (the maximum this export accepts)"),
  ])


def check_frames(frames, image_size, channels, min_frames, what="frames"):
  """Asserts frames are [B, T >= min_frames, image_size, image_size, channels]."""
  shape = tf.shape(frames)
  layout = f"{what} are [batch, time, {image_size}, {image_size}, {channels}]"
  frames = _checked(frames, [
      tf.debugging.assert_equal(
          shape[2], image_size, message=f"{what}: expected frame height {image_size} ({layout})"),
      tf.debugging.assert_equal(
          shape[3], image_size, message=f"{what}: expected frame width {image_size} ({layout})"),
      tf.debugging.assert_equal(
          shape[4], channels, message=f"{what}: expected {channels} channel(s) ({layout})"),
      tf.debugging.assert_greater_equal(
          shape[1], min_frames, message=f"{what}: at least {min_frames} context frames are "
                                        f"needed ({layout})"),
  ])
  return tf.ensure_shape(frames, [None, None, image_size, image_size, channels])


def check_modalities(inputs, modalities):
  """Asserts each modality's per-example shape and the mask's; restores static shapes.

  Args:
    inputs: {name: [B, ...] float32, "mask": [B, M] float32}.
    modalities: the model's `Modality` specs (order = mask columns).

  Returns:
    a new dict with the same keys and static shapes [None, *shape].
  """
  batch = tf.shape(inputs["mask"])[0]
  out = {}
  for m in modalities:
    x = inputs[m.name]
    shape = tf.shape(x)
    expected = "[batch, " + ", ".join(str(s) for s in m.shape) + "]"
    checks = [tf.debugging.assert_equal(
        shape[0], batch, message=f"{m.name}: batch size differs from the mask's")]
    for axis, size in enumerate(m.shape):
      checks.append(tf.debugging.assert_equal(
          shape[axis + 1], size,
          message=f"{m.name}: expected shape {expected}, wrong size on axis {axis + 1}"))
    out[m.name] = tf.ensure_shape(_checked(x, checks), (None,) + tuple(m.shape))
  num = len(modalities)
  names = [m.name for m in modalities]
  mask = _checked(inputs["mask"], [tf.debugging.assert_equal(
      tf.shape(inputs["mask"])[1], num,
      message=f"mask: expected shape [batch, {num}] (columns {names})")])
  out["mask"] = tf.ensure_shape(mask, (None, num))
  return out


def _float32(outputs):
  return {k: tf.cast(v, tf.float32) for k, v in outputs.items()}


# ------------------------------------------------------------------ endpoints
def _count_spec(name):
  return tf.TensorSpec([], tf.int32, name=name)


SEED_SPEC = tf.TensorSpec([2], tf.int32, name="seed")


def _video_rollout(model):
  """A graph-mode (tensor-argument) version of the model's `predict`.

  SVG-style models keep a `tf.function` `_rollout(context, num_future, num_samples,
  seed)` behind their eager `predict` (which validates Python ints); use it when
  present, else call `predict` with tensors.
  """
  rollout = getattr(model, "_rollout", None)
  if rollout is not None:
    return rollout
  return lambda context, num_future, num_samples, seed: model.predict(
      context, num_future, num_samples=num_samples, seed=seed)


def video_endpoints(model, max_future=DEFAULT_MAX_FUTURE, max_samples=DEFAULT_MAX_SAMPLES):
  """[(name, fn, input_signature)] for a video model; the first is serving_default."""
  size, channels = int(model.image_size), int(model.channels)
  min_context = int(getattr(model, "min_context", 1))
  rollout = _video_rollout(model)
  frames_spec = tf.TensorSpec([None, None, None, None, None], tf.float32, name="frames")

  def predict_next_frames(frames, num_future, seed):
    frames = check_frames(tf.cast(frames, tf.float32), size, channels, min_context)
    num_future = check_count(num_future, "num_future", max_future)
    out = rollout(frames, num_future, tf.constant(1, tf.int32), seed)
    return _float32({"frames": out[:, 0]})

  def sample_next_frames(frames, num_future, num_samples, seed):
    frames = check_frames(tf.cast(frames, tf.float32), size, channels, min_context)
    num_future = check_count(num_future, "num_future", max_future)
    num_samples = check_count(num_samples, "num_samples", max_samples)
    return _float32({"frames": rollout(frames, num_future, num_samples, seed)})

  endpoints = [
      ("predict_next_frames", predict_next_frames,
       [frames_spec, _count_spec("num_future"), SEED_SPEC]),
      ("sample_next_frames", sample_next_frames,
       [frames_spec, _count_spec("num_future"), _count_spec("num_samples"), SEED_SPEC]),
  ]
  return endpoints


def multimodal_endpoints(model, max_samples=DEFAULT_MAX_SAMPLES):
  """[(name, fn, input_signature)] for an MVAE-like model; the first is serving_default."""
  modalities = list(model.modalities)
  spec = {m.name: tf.TensorSpec([None] * (1 + len(m.shape)), tf.float32, name=m.name)
          for m in modalities}
  spec["mask"] = tf.TensorSpec([None, None], tf.float32, name="mask")

  def infer(inputs):
    inputs = check_modalities(inputs, modalities)
    return _float32(model.reconstruct(inputs))

  def encode(inputs):
    inputs = check_modalities(inputs, modalities)
    loc, scale = model.encode(inputs)
    return _float32({"loc": loc, "scale": scale})

  def generate(inputs, num_samples, seed):
    inputs = check_modalities(inputs, modalities)
    num_samples = check_count(num_samples, "num_samples", max_samples)
    return _float32(model.generate(inputs, num_samples=num_samples, seed=seed))

  def sample(num_samples, seed):
    num_samples = check_count(num_samples, "num_samples", max_samples)
    return _float32(model.sample(num_samples, seed=seed))

  return [
      ("infer", infer, [spec]),
      ("encode", encode, [spec]),
      ("generate", generate, [spec, _count_spec("num_samples"), SEED_SPEC]),
      ("sample", sample, [_count_spec("num_samples"), SEED_SPEC]),
  ]


def build_archive(model, max_future=DEFAULT_MAX_FUTURE, max_samples=DEFAULT_MAX_SAMPLES):
  """An `ExportArchive` tracking `model` with its signatures (see the module doc).

  Returns:
    (archive, metadata dict).
  """
  kind = model_kind(model)
  if kind == "video":
    endpoints = video_endpoints(model, max_future, max_samples)
  else:
    endpoints = multimodal_endpoints(model, max_samples)
  archive = keras.export.ExportArchive()
  archive.track(model)
  for name, fn, signature in endpoints:
    archive.add_endpoint(name, fn, input_signature=signature)
  metadata = {
      "kind": kind,
      "class": type(model).__name__,
      "signatures": [name for name, _, _ in endpoints],
      "serving_default": endpoints[0][0],
      "max_future": int(max_future) if kind == "video" else None,
      "max_samples": int(max_samples),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "model_config": _jsonable(model.get_config()),
  }
  if kind == "video":
    metadata["frame_shape"] = [int(model.image_size), int(model.image_size),
                               int(model.channels)]
    metadata["min_context"] = int(getattr(model, "min_context", 1))
  else:
    metadata["modalities"] = [{"name": m.name, "shape": list(m.shape)}
                              for m in model.modalities]
  return archive, metadata


def _jsonable(obj):
  try:
    return json.loads(json.dumps(obj, default=str))
  except (TypeError, ValueError):
    return None


# ------------------------------------------------------------------ versions
def list_versions(model_base_path):
  """Integer version directories under `<export_dir>/<name>`, ascending."""
  if not os.path.isdir(model_base_path):
    return []
  return sorted(int(d) for d in os.listdir(model_base_path)
                if d.isdigit() and os.path.isdir(os.path.join(model_base_path, d)))


def _check_name(name):
  if not isinstance(name, str) or not _NAME_RE.match(name):
    raise ValueError(f"model name {name!r} must be letters, digits, '_', '.' or '-' "
                     "(it becomes a directory and the TF Serving model name)")


def export_model(model, export_dir, name, version=None, overwrite=False,
                 max_future=DEFAULT_MAX_FUTURE, max_samples=DEFAULT_MAX_SAMPLES):
  """Writes `model` as `<export_dir>/<name>/<version>/`, atomically.

  Args:
    model: a tfmvae video model or multimodal model (MVAE, VAEGAN).
    export_dir: TF Serving base directory (e.g. "exported").
    name: model name (directory under export_dir; the TF Serving model name).
    version: positive integer version; None: one above the highest existing (1
      for a new model).
    overwrite: replace an existing `version` (otherwise FileExistsError).
    max_future: largest `num_future` a video request may ask for.
    max_samples: largest `num_samples` a request may ask for.

  Returns:
    the path of the written version directory.

  Raises:
    FileExistsError: `version` exists and overwrite is False.
    ValueError: a bad name, version, max_future or max_samples.
    TypeError: a model that cannot be exported.
  """
  _check_name(name)
  if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                              or version < 1):
    raise ValueError(f"version must be a positive integer, got {version!r}")
  if int(max_future) < 1 or int(max_samples) < 1:
    raise ValueError(f"max_future ({max_future}) and max_samples ({max_samples}) must be >= 1")
  base = os.path.join(os.fspath(export_dir), name)
  if version is not None and not overwrite and os.path.exists(os.path.join(base, str(version))):
    raise FileExistsError(f"{os.path.join(base, str(version))} exists; pass overwrite=True "
                          "(--overwrite) to replace it")
  archive, metadata = build_archive(model, max_future=max_future, max_samples=max_samples)
  os.makedirs(base, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=base)
  os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a server running as another user must read it.
  try:
    archive.write_out(tmp, verbose=False)
    _write_metadata(tmp, metadata)
    return _move_into_place(tmp, base, version, overwrite)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)


def _write_metadata(path, metadata):
  os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
  with open(os.path.join(path, METADATA_FILE), "w") as f:
    json.dump(metadata, f, indent=2, sort_keys=True)


def _move_into_place(tmp, base, version, overwrite):
  """Renames the finished temporary directory to `base/<version>` (atomic rename)."""
  if version is None:
    # Another export may take the next number between listing and renaming: retry.
    for _ in range(100):
      target = os.path.join(base, str(max(list_versions(base), default=0) + 1))
      try:
        os.rename(tmp, target)  # Fails if target exists and is a non-empty directory.
        return target
      except OSError:
        if not os.path.exists(target):
          raise
    raise RuntimeError(f"could not find a free version number under {base}")
  target = os.path.join(base, str(version))
  if not os.path.exists(target):
    os.rename(tmp, target)
    return target
  if not overwrite:
    raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
  old = tempfile.mkdtemp(prefix=f".old-{version}-", dir=base)
  os.rmdir(old)
  os.rename(target, old)  # Two renames: the version is missing for an instant, never partial.
  try:
    os.rename(tmp, target)
  except BaseException:
    os.rename(old, target)
    raise
  shutil.rmtree(old, ignore_errors=True)
  return target


def read_metadata(version_dir):
  """The `assets.extra/tfmvae_export.json` of an exported version (a dict)."""
  with open(os.path.join(os.fspath(version_dir), METADATA_FILE)) as f:
    return json.load(f)


# ------------------------------------------------------------------ loading models
def _import_model_modules():
  """Imports every module of tfmvae.models, registering its Keras classes for loading."""
  import importlib  # pylint: disable=g-import-not-at-top
  import pkgutil  # pylint: disable=g-import-not-at-top
  import tfmvae.models  # pylint: disable=g-import-not-at-top
  for info in pkgutil.iter_modules(tfmvae.models.__path__):
    importlib.import_module(f"tfmvae.models.{info.name}")


def load_model_for_export(path):
  """Rebuilds a model from a `.keras` file or a training model_dir.

  A model_dir is what `tfmvae.train_lib.train` writes (config.json + checkpoints);
  `tfmvae.train_lib.load_model` rebuilds the model from the config and restores
  the latest checkpoint.

  Raises:
    FileNotFoundError: the path does not exist.
    tfmvae.configs.ConfigError (a ValueError): a directory that is not a model_dir.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no model at {path!r} (expected a .keras file or a model_dir)")
  _import_model_modules()
  if os.path.isfile(path):
    if not path.endswith(".keras"):
      raise ValueError(f"{path!r} is a file but not a .keras archive")
    return keras.saving.load_model(path, compile=False)
  from tfmvae import train_lib  # pylint: disable=g-import-not-at-top
  model, _, _ = train_lib.load_model(path)  # (model, config, step), latest checkpoint.
  return model
