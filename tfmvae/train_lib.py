"""Flag-free training, evaluation and sampling from a `tfmvae.configs.Config`.

    config -> strategy -> (inside its scope) model + optimizers -> restore the last
    checkpoint -> model.fit over tf.data with callbacks -> checkpoints, summaries

`train(config)` returns `(model, history)` and works in Colab (no flags). The
binaries in `tfmvae.bin` are thin wrappers around `train`, `evaluate` and
`write_samples`.

model_dir layout:
    config.json             the Config (written after validation, atomically)
    checkpoint, ckpt-N.*    tf.train.CheckpointManager files (N = global step)
    train/                  TensorBoard: every loss term (every `summary_every`
                            steps) and image grids / video strips (`image_every`)

Resume. `tf.train.Checkpoint(model=model, <name>=optimizer...)` holds every model
variable (including `train_steps` and `kl_weight`) and every optimizer attribute of
the model (`optimizer`, `encoder_optimizer`, ...: their iterations and slots). The
optimizers are built before restoring, so their slots restore immediately. A rerun
with the same model_dir restores the latest checkpoint, and fit continues from
`model.train_steps` (Keras epochs resume at `train_steps // steps_per_epoch`), KL
warm-up included (`KLWarmup` reads `train_steps`).

Atomic checkpoints (TF's ordering, relied on and tested in tests/test_train_lib.py):
`CheckpointManager.save` first writes the data shards under a temporary name,
merges them into `ckpt-N.data-*` / `ckpt-N.index`, and only then rewrites the
`checkpoint` state file (itself replaced atomically: temp file + rename). Restore
reads only the checkpoint named by the state file, so a process killed mid-save
leaves the previous checkpoint as the latest; stray files of a half-written
checkpoint are ignored (and later overwritten).

Interrupts: with `handle_signals=True` (the binary), SIGTERM / SIGINT set a flag
that a callback checks at the end of every batch: it saves a checkpoint and stops
fit. A second signal kills the process at once (default handler).

Distribution: "mirrored" (local devices), "multi_worker" (MultiWorkerMirroredStrategy
from TF_CONFIG; the chief writes model_dir, other workers write their checkpoints
to a temporary folder they delete), "tpu" (TPUClusterResolver(config.tpu); untested
here: no TPU). Model, optimizers and checkpoint are created under `strategy.scope()`;
`batch_size` is global; the models average losses over the global batch.
"""
import dataclasses
import importlib
import inspect
import json
import math
import os
import pathlib
import shutil
import signal
import tempfile
import threading

import keras
import numpy as np
import tensorflow as tf

from tfmvae import configs
from tfmvae.callbacks import KLWarmup
from tfmvae.configs import ConfigError

CONFIG_FILE = "config.json"


# ============================================================================ registry
def _resolve(path):
  module_name, _, attr = path.partition(":")
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ConfigError(f"cannot import {module_name} ({e})") from e
  return getattr(module, attr)


def _model_class(module_name, class_name, model_name):
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ConfigError(f"model {model_name!r} is not available: {module_name} cannot be "
                      f"imported ({e})") from e
  if not hasattr(module, class_name):
    raise ConfigError(f"model {model_name!r} is not available: {module_name} has no "
                      f"{class_name}")
  return getattr(module, class_name)


def _construct(cls, config, **fixed):
  """cls(**shared config values it accepts, **fixed, **config.model_options)."""
  params = set()
  for klass in cls.__mro__:  # A subclass forwarding **kwargs accepts its bases' args.
    if klass in (keras.Model, keras.layers.Layer) or "__init__" not in vars(klass):
      continue
    params |= set(inspect.signature(klass.__init__).parameters)
  shared = {"image_size": config.image_size, "channels": config.channels,
            "latent_dim": config.latent_dim, "z_dim": config.latent_dim,
            "beta": config.beta, "n_past": config.n_past, "n_future": config.n_future,
            "seed": config.seed}
  kwargs = {k: v for k, v in shared.items() if k in params}
  kwargs.update(fixed)
  kwargs.update(config.model_options)
  try:
    return cls(**kwargs)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"cannot build model {config.model!r}: {e}") from e


def num_attributes(config):
  """Size of the second modality of the multimodal datasets."""
  if config.dataset == "mnist_pairs":
    return 10
  if config.dataset == "shapes_pairs":
    module = importlib.import_module("tfmvae.data.moving_shapes")
    return len(module.shape_attribute_names(config.channels, video=False))
  if config.dataset == "celeba":
    module = importlib.import_module("tfmvae.data.celeba")
    return len(module.resolve_attributes(_celeba_attributes(config)))
  raise ConfigError(f"dataset {config.dataset!r} has no second modality")


def _celeba_attributes(config):
  if config.attributes in ("mvae18", "all"):
    return config.attributes
  return [a.strip() for a in config.attributes.split(",") if a.strip()]


def second_modality_name(config):
  return "label" if config.dataset == "mnist_pairs" else "attributes"


def make_modalities(config):
  """The MVAE modalities of a multimodal dataset: image first, then label/attributes."""
  from tfmvae import modalities as mods  # pylint: disable=g-import-not-at-top
  nets = dict(hidden_units=config.hidden_units, filters=config.filters,
              batch_norm=config.batch_norm)
  try:
    image = mods.image(shape=(config.image_size, config.image_size, config.channels),
                       likelihood=config.image_likelihood, network=config.image_network,
                       **nets)
    if config.dataset == "mnist_pairs":
      second = mods.label(10, weight=config.label_weight, hidden_units=config.hidden_units)
    else:
      second = mods.attributes(num_attributes(config), weight=config.label_weight,
                               hidden_units=config.hidden_units)
  except ValueError as e:
    raise ConfigError(f"cannot build the modalities of {config.dataset!r}: {e}") from e
  return [image, second]


def build_mvae(config):
  from tfmvae.models import MVAE  # pylint: disable=g-import-not-at-top
  return _construct(MVAE, config, modalities=make_modalities(config),
                    num_subsets=config.num_subsets)


def build_vaegan(config):
  cls = _model_class("tfmvae.models.vaegan", "VAEGAN", "vaegan")
  return _construct(cls, config, modalities=make_modalities(config),
                    num_subsets=config.num_subsets)


def build_svg_fp(config):
  cls = _model_class("tfmvae.models.svg", "SVG", "svg_fp")
  return _construct(cls, config, prior="fixed")


def build_svg_lp(config):
  cls = _model_class("tfmvae.models.svg", "SVG", "svg_lp")
  return _construct(cls, config, prior="learned")


def build_video_mvae(config):
  return _construct(_model_class("tfmvae.models.video_mvae", "VideoMVAE", "video_mvae"),
                    config)


def build_video_vaegan(config):
  return _construct(
      _model_class("tfmvae.models.video_vaegan", "VideoVAEGAN", "video_vaegan"), config)


def build_model(config):
  """The (uncompiled) model of a config, via `configs.MODELS[config.model].builder`."""
  configs.validate(config)
  return _resolve(configs.MODELS[config.model].builder)(config)


# ============================================================================ optimizers
def make_optimizer(config, learning_rate=None):
  lr = config.learning_rate if learning_rate is None else learning_rate
  if config.optimizer == "adam":
    return keras.optimizers.Adam(learning_rate=lr, beta_1=config.beta_1)
  if config.optimizer == "torch_adam":
    from tfmvae.optimizers import TorchAdam  # pylint: disable=g-import-not-at-top
    return TorchAdam(learning_rate=lr, beta_1=config.beta_1)
  if config.optimizer == "rmsprop":
    return keras.optimizers.RMSprop(learning_rate=lr)
  return keras.optimizers.SGD(learning_rate=lr)


def _jit(config):
  return {"auto": "auto", "true": True, "false": False}[config.jit_compile]


def compile_single(model, config):
  """model.compile(optimizer=<config optimizer>)."""
  model.compile(optimizer=make_optimizer(config), jit_compile=_jit(config))


def compile_gan(model, config):
  """compile(<name>_optimizer=...) for every `*_optimizer` argument of the model's
  compile (discriminators get `discriminator_learning_rate`)."""
  params = inspect.signature(model.compile).parameters
  kwargs = {}
  for name in params:
    if name.endswith("optimizer"):
      lr = (config.discriminator_learning_rate
            if "discriminator" in name and config.discriminator_learning_rate else None)
      kwargs[name] = make_optimizer(config, lr)
  if "jit_compile" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
    kwargs["jit_compile"] = _jit(config)
  model.compile(**kwargs)


def compile_model(model, config):
  _resolve(configs.MODELS[config.model].compile)(model, config)


def model_optimizers(model):
  """{attribute name: optimizer} of every optimizer attribute of a model."""
  out = {}
  for name, value in vars(model).items():
    if isinstance(value, keras.optimizers.Optimizer) and not name.startswith("_"):
      out[name] = value
  if getattr(model, "optimizer", None) is not None:
    out.setdefault("optimizer", model.optimizer)
  return out


def build_optimizers(model):
  """Creates every optimizer's slots now (so a checkpoint restores them at once)."""
  for opt in model_optimizers(model).values():
    if not opt.built:
      opt.build(model.trainable_variables)


# ============================================================================ strategy
def make_strategy(config):
  """The tf.distribute strategy named by `config.strategy`."""
  if config.strategy == "default":
    return tf.distribute.get_strategy()
  if config.strategy == "mirrored":
    return tf.distribute.MirroredStrategy()
  if config.strategy == "multi_worker":
    if not os.environ.get("TF_CONFIG"):
      raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable")
    return tf.distribute.MultiWorkerMirroredStrategy()
  # TPU: not testable on this project's machines.
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
  """True unless this is a non-chief worker of a multi-worker strategy."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type in (None, "chief"):
    return True
  has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
  return task_type == "worker" and task_id == 0 and not has_chief


_POLICIES = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


# ============================================================================ data
_DATA_MODULES = {"mnist_pairs": "tfmvae.data.mnist_pairs",
                 "shapes_pairs": "tfmvae.data.moving_shapes",
                 "celeba": "tfmvae.data.celeba",
                 "moving_mnist": "tfmvae.data.moving_mnist",
                 "moving_shapes": "tfmvae.data.moving_shapes"}


def _dataset_fn(config):
  """The loader function `tfmvae.data.<module>.<dataset>`."""
  return getattr(importlib.import_module(_DATA_MODULES[config.dataset]), config.dataset)


def raw_dataset(config, split, num=None):
  """Unbatched examples of a split: dicts (multimodal) or frames [T, H, W, C] (video).

  Args:
    config: the Config.
    split: "train", "validation" or "test".
    num: number of examples/sequences for generated datasets (None: their default).
  """
  fn = _dataset_fn(config)
  c = config
  data_dir = c.data_dir or None
  train = split == "train"
  if c.dataset == "mnist_pairs":
    ds = fn(split, label_fraction=c.label_fraction if train else 1.0, seed=c.seed,
            data_dir=data_dir)
  elif c.dataset == "shapes_pairs":
    ds = fn(split, image_size=c.image_size, seed=c.seed, num_examples=num,
            attribute_fraction=c.label_fraction if train else 1.0, channels=c.channels)
  elif c.dataset == "celeba":
    ds = fn(split, data_dir=data_dir, manual_dir=c.manual_dir or None,
            image_size=c.image_size, attributes=_celeba_attributes(c))
  else:
    seq_len = c.seq_len if train else c.n_past + c.num_eval_future
    common = dict(seq_len=seq_len, image_size=c.image_size, stochastic=c.stochastic,
                  seed=c.seed, num_sequences=num)
    if c.dataset == "moving_mnist":
      ds = fn(split, num_digits=c.num_digits, digit_size=c.digit_size, data_dir=data_dir,
              **common)
    else:
      ds = fn(split, num_shapes=c.num_shapes, channels=c.channels, **common)
      ds = ds.map(lambda e: e["frames"])
  return ds


def make_dataset(config, split="train", batch_size=None, num=None):
  """Batched dataset for fit/evaluate: training data is shuffled and repeated.

  Finite datasets (MNIST pairs, CelebA) are shuffled with `shuffle_buffer` and
  repeated; generated ones stream fresh examples. Batches have a static size
  (drop_remainder) so every replica gets the same share.
  """
  batch_size = batch_size or config.batch_size
  try:
    ds = raw_dataset(config, split, num=num)
  except (FileNotFoundError, OSError) as e:
    raise ConfigError(f"cannot read dataset {config.dataset!r}: {e}") from e
  if split == "train":
    if config.dataset in ("mnist_pairs", "celeba"):
      ds = ds.shuffle(config.shuffle_buffer, seed=config.seed).repeat()
    elif ds.cardinality() != tf.data.INFINITE_CARDINALITY:
      ds = ds.repeat()
  ds = ds.batch(batch_size, drop_remainder=split == "train")
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def example_batch(config, num=8, split="test"):
  """A fixed batch of `num` test examples (NumPy), for image summaries and samples."""
  ds = raw_dataset(config, split, num=max(num, 1)).take(num).batch(num)
  return next(iter(ds.as_numpy_iterator()))


# ============================================================================ images
def _grid(images, ncols=None):
  from tfmvae.data import visualize  # pylint: disable=g-import-not-at-top
  return visualize.image_grid(np.asarray(images, np.float32), ncols=ncols)


def image_panels(model, config, batch, seed=0, num_samples=4):
  """{name: uint8 grid [H, W, C]} of what the model generates (for TB and PNGs).

  multimodal: `prior_samples` (z ~ p(z), decoded image means),
  `cross_modal` (rows: the real test image then `num_samples` images generated from
  its label/attributes alone), `reconstruction` (real / reconstructed from the
  image). video: `prediction` (per test sequence a row of real future frames, then
  rows of predicted futures after the n_past real frames).
  """
  if config.kind == "video":
    frames = np.asarray(batch, np.float32)
    context = frames[:, :config.n_past]
    future = frames[:, config.n_past:]
    pred = np.asarray(model.predict(context, num_future=future.shape[1],
                                    num_samples=num_samples, seed=seed))
    rows = []
    for i in range(frames.shape[0]):
      rows.append(future[i])
      rows.extend(pred[i, s] for s in range(pred.shape[1]))
    return {"prediction": _grid(np.concatenate(rows), ncols=future.shape[1])}
  second = second_modality_name(config)
  n = batch["image"].shape[0]
  out = {"prior_samples": _grid(model.sample(n * num_samples, seed=seed)["image"],
                                ncols=n)}
  gen = np.asarray(model.generate({second: batch[second]}, num_samples=num_samples,
                                  seed=seed)["image"])
  tiles = [np.concatenate([batch["image"][i:i + 1], gen[i]]) for i in range(n)]
  out["cross_modal"] = _grid(np.concatenate(tiles), ncols=num_samples + 1)
  recon = np.asarray(model.reconstruct({"image": batch["image"]})["image"])
  out["reconstruction"] = _grid(np.stack([batch["image"], recon], 1).reshape(
      (-1,) + recon.shape[1:]), ncols=2)
  return out


# ============================================================================ callbacks
def step_variable(model):
  """The model's step counter: `train_steps`, else its optimizer's iterations."""
  if hasattr(model, "train_steps"):
    return model.train_steps
  if getattr(model, "optimizer", None) is not None:
    return model.optimizer.iterations
  raise ConfigError(f"{type(model).__name__} has neither train_steps nor an optimizer")


def _step(model):
  return int(keras.ops.convert_to_numpy(step_variable(model)))


class SignalFlag:
  """Records SIGTERM / SIGINT instead of dying; restores the old handlers on exit."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._old = {}

  def _handle(self, signum, frame):
    del frame
    self.received = signum
    for sig in self.SIGNALS:  # A second signal acts normally (e.g. kills).
      signal.signal(sig, self._old.get(sig, signal.SIG_DFL))

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._old[sig] = signal.getsignal(sig)
        signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)
    return False


class TrainControl(keras.callbacks.Callback):
  """Checkpoints every `every` steps, stops at `total_steps`, saves on a signal.

  Steps are the model's own `train_steps` (restored with the checkpoint).
  """

  def __init__(self, manager, every, total_steps, signal_flag=None):
    super().__init__()
    self.manager = manager
    self.every = int(every)
    self.total_steps = int(total_steps)
    self.signal_flag = signal_flag
    self.interrupted = None
    self.last_saved = None

  def save(self, step):
    if self.last_saved != step:
      self.manager.save(checkpoint_number=step)
      self.last_saved = step

  def on_train_batch_end(self, batch, logs=None):
    step = _step(self.model)
    if self.signal_flag is not None and self.signal_flag.received is not None:
      self.interrupted = self.signal_flag.received
      self.save(step)
      self.model.stop_training = True
      return
    if step % self.every == 0:
      self.save(step)
    if step >= self.total_steps:
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    self.save(_step(self.model))


def _metadata(plugin, data_class):
  from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
  meta = summary_pb2.SummaryMetadata()
  meta.plugin_data.plugin_name = plugin
  meta.data_class = getattr(summary_pb2, data_class)
  return meta


def write_scalar(name, value, step):
  """A TensorBoard scalar with core TF ops (`tf.summary.scalar` needs the
  tensorboard package, which TF 2.21 does not install)."""
  tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                   metadata=_metadata("scalars", "DATA_CLASS_SCALAR"))


def write_image(name, grid, step):
  """A TensorBoard image (the images plugin's [width, height, png] string tensor)."""
  grid = np.asarray(grid, np.uint8)
  png = tf.io.encode_png(grid)
  tensor = tf.stack([tf.as_string(grid.shape[1]), tf.as_string(grid.shape[0]), png])
  tf.summary.write(name, tensor, step=step,
                   metadata=_metadata("images", "DATA_CLASS_BLOB_SEQUENCE"))


class Summaries(keras.callbacks.Callback):
  """TensorBoard scalars of every logged loss term and image panels, at model steps."""

  def __init__(self, logdir, config, batch, summary_every, image_every, enabled=True):
    super().__init__()
    self.config = config
    self.batch = batch
    self.summary_every = int(summary_every)
    self.image_every = int(image_every)
    self.enabled = enabled
    self.writer = tf.summary.create_file_writer(str(logdir)) if enabled else None
    self.last_image = None

  def on_train_batch_end(self, batch, logs=None):
    if not self.enabled:
      return
    step = _step(self.model)
    if step % self.summary_every == 0 and logs:
      with self.writer.as_default(step=step):
        for name, value in logs.items():
          write_scalar(name, keras.ops.convert_to_numpy(value), step)
        if hasattr(self.model, "kl_weight"):
          write_scalar("kl_weight", keras.ops.convert_to_numpy(self.model.kl_weight), step)
    if self.image_every and step % self.image_every == 0:
      self.write_images(step)

  def write_images(self, step):
    if not self.enabled or self.batch is None or self.last_image == step:
      return
    self.last_image = step
    panels = image_panels(self.model, self.config, self.batch, seed=0)
    with self.writer.as_default(step=step):
      for name, grid in panels.items():
        write_image(name, grid, step)
    self.writer.flush()

  def on_train_end(self, logs=None):
    if self.enabled:
      self.write_images(_step(self.model))
      self.writer.flush()


# ============================================================================ model_dir
def read_config(model_dir):
  """The Config saved in a model_dir, or None."""
  path = pathlib.Path(model_dir) / CONFIG_FILE
  if not path.is_file():
    return None
  try:
    return configs.Config.from_json(path.read_text())
  except (ValueError, TypeError) as e:
    raise ConfigError(f"{path} is not a tfmvae config ({e})") from e


def check_model_dir(config):
  """Raises ConfigError when model_dir holds another model (nothing is written)."""
  model_dir = pathlib.Path(config.model_dir)
  if model_dir.exists() and not model_dir.is_dir():
    raise ConfigError(f"--model_dir={model_dir} exists and is not a directory")
  saved = read_config(model_dir)
  if saved is None:
    if tf.train.latest_checkpoint(str(model_dir)) is not None:
      raise ConfigError(f"--model_dir={model_dir} holds checkpoints but no {CONFIG_FILE}")
    return None
  diff = configs.incompatible_fields(saved, config)
  if diff:
    what = "; ".join(f"{n}: saved {a!r}, now {b!r}" for n, a, b in diff)
    raise ConfigError(f"--model_dir={model_dir} holds a different model ({what})")
  return saved


def write_config(config, model_dir=None):
  """Writes config.json atomically (temp file + rename)."""
  model_dir = pathlib.Path(model_dir or config.model_dir)
  model_dir.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=".config.", suffix=".json")
  with os.fdopen(fd, "w") as f:
    f.write(config.to_json())
  os.chmod(tmp, 0o644)
  os.replace(tmp, model_dir / CONFIG_FILE)


def model_variable_map(model):
  """{path without the model's own name: tf.Variable} of every model variable.

  Needed because `tf.train.Checkpoint(model=keras3_model)` alone does not reach
  every Keras 3 variable: layers kept in Python lists (e.g. the FrameEncoder's
  BatchNorm blocks) lose their non-trainable state (moving statistics), and
  trainable weights are only reached through the optimizer. Paths drop the first
  component (the model name, uniquified per process: "svg" vs "svg_1"); repeated
  paths (several SeedGenerators) get "#2", "#3" in `model.variables` order.
  """
  out = {}
  for v in model.variables:
    key = base = v.path.split("/", 1)[-1]
    n = 1
    while key in out:  # e.g. several SeedGenerators: ordered by model.variables.
      n += 1
      key = f"{base}#{n}"
    out[key] = v.value if hasattr(v, "value") else v
  return out


def make_checkpoint(model):
  """tf.train.Checkpoint of the model, every model variable by path, and each of
  the model's optimizers."""
  return tf.train.Checkpoint(model=model, variables=model_variable_map(model),
                             **model_optimizers(model))


# ============================================================================ train
class TrainResult(tuple):
  """`(model, history)`, plus `step`, `interrupted` (signal name or None),
  `signal_number`, `strategy`."""

  def __new__(cls, model, history, step, interrupted=None, signal_number=0, strategy=None):
    self = super().__new__(cls, (model, history))
    self.model, self.history, self.step = model, history, step
    self.interrupted, self.signal_number, self.strategy = interrupted, signal_number, strategy
    return self


def train(config, handle_signals=False, verbose="auto", callbacks=()):
  """Trains `config.model` on `config.dataset` into `config.model_dir`.

  Args:
    config: a `tfmvae.configs.Config` (e.g. `configs.get_preset("quickstart",
      model_dir=...)`).
    handle_signals: save a checkpoint and stop on SIGTERM / SIGINT (binaries).
    verbose: Keras fit verbosity ("auto": progress bars in Colab).
    callbacks: extra Keras callbacks.

  Returns:
    `TrainResult`, a tuple (model, history) with attributes `step` (the model's
    final step), `interrupted` ("SIGTERM"/"SIGINT" or None) and `signal_number`.

  Raises:
    ConfigError: bad settings, unreadable data or a model_dir holding another
      model; raised before anything is written to model_dir.
  """
  configs.validate(config)
  if not config.model_dir:
    raise ConfigError("model_dir is required")
  check_model_dir(config)
  previous_policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(_POLICIES[config.mixed_precision])
  try:
    return _train(config, handle_signals, verbose, list(callbacks))
  finally:
    keras.mixed_precision.set_global_policy(previous_policy)


def _train(config, handle_signals, verbose, extra_callbacks):
  strategy = make_strategy(config)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise ConfigError(f"--batch_size={config.batch_size} is not divisible by the "
                      f"{replicas} replicas of --strategy={config.strategy}")
  keras.utils.set_random_seed(config.seed)
  train_ds = make_dataset(config, "train")
  chief = is_chief(strategy)
  with strategy.scope():
    model = build_model(config)
    compile_model(model, config)
    build_optimizers(model)
    checkpoint = make_checkpoint(model)
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    _skip_symbolic_build(model)
  warmup = hasattr(model, "kl_weight") and hasattr(model, "train_steps")
  if config.kl_warmup_steps and not warmup:
    raise ConfigError(f"--kl_warmup_steps={config.kl_warmup_steps}: model {config.model!r} "
                      "has no kl_weight/train_steps variables to warm up")
  image_batch = None
  if chief:
    try:
      image_batch = example_batch(config, num=4 if config.kind == "video" else 8)
    except (FileNotFoundError, OSError, ValueError) as e:
      raise ConfigError(f"cannot read dataset {config.dataset!r}: {e}") from e
  # Everything above may fail on bad input; nothing has been written yet.
  model_dir = pathlib.Path(config.model_dir)
  ckpt_dir = model_dir if chief else pathlib.Path(tempfile.mkdtemp(prefix="tfmvae_worker_"))
  latest = tf.train.latest_checkpoint(str(model_dir))
  if chief:
    write_config(config)
  manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir),
                                       max_to_keep=config.max_checkpoints)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()
  start = _step(model)
  flag = SignalFlag() if handle_signals else None
  control = TrainControl(manager, config.checkpoint_every, config.steps, flag)
  summaries = Summaries(model_dir / "train", config, image_batch, config.summary_every,
                        config.image_every, enabled=chief)
  cbs = [control, summaries] + extra_callbacks
  if warmup:
    cbs.insert(0, KLWarmup(config.kl_warmup_steps, beta=config.beta))
  spe = config.steps_per_epoch
  history = keras.callbacks.History()
  if start < config.steps:
    val = None
    if config.validation_steps:
      val = make_dataset(config, "validation").repeat()
    with (flag or _Null()):
      history = model.fit(train_ds, epochs=math.ceil(config.steps / spe),
                          initial_epoch=start // spe, steps_per_epoch=spe,
                          validation_data=val,
                          validation_steps=config.validation_steps or None,
                          callbacks=cbs, verbose=verbose)
  step = _step(model)
  if not chief:
    shutil.rmtree(ckpt_dir, ignore_errors=True)
  elif config.eval_after_training and not control.interrupted:
    write_json(dict(evaluate(model, config, seed=config.seed, report_dir=model_dir / "report"),
                    model=config.model,
                    dataset=config.dataset, step=step), model_dir / "metrics.json")
    write_samples(model, config, model_dir / "samples", seed=config.seed)
  names = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}
  return TrainResult(model, history, step, names.get(control.interrupted),
                     int(control.interrupted or 0), strategy)


def _skip_symbolic_build(model):
  """Works around Keras 3.15 + MultiWorkerMirroredStrategy.

  `fit` first calls `_maybe_symbolic_build`, which averages the first batch with
  `strategy.reduce("MEAN", batch)`; under CollectiveAllReduceStrategy that fails
  for nested (dict) batches ("Attempt to convert a value ({'image': PerReplica..."),
  before any training. The build it performs is not needed here: our models
  create their weights in `__init__` (weightless layers such as the product of
  experts may stay unmarked) and `build_optimizers` ran. So skip it, on this
  instance only, and only when the model and its optimizers are built.
  """
  if model.built and all(opt.built for opt in model_optimizers(model).values()):
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None  # pylint: disable=protected-access
  # Second bug: fit reduces the step's logs across workers with
  # strategy.reduce("MEAN", v, axis=0), which fails on scalars ("Invalid reduction
  # dimension 0 for input with 0 dimensions"). Give every log a leading axis of 1.
  train_step = model.train_step

  def train_step_with_vector_logs(data):
    return {k: tf.reshape(v, [1]) for k, v in train_step(data).items()}

  model.train_step = train_step_with_vector_logs


class _Null:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


# ============================================================================ load
def load_model(model_dir, config=None, checkpoint=None):
  """Rebuilds the model of a model_dir and restores its latest checkpoint.

  Args:
    model_dir: a directory written by `train`.
    config: the Config to build (default: the saved config.json).
    checkpoint: a checkpoint prefix (default: the latest).

  Returns:
    (model, config, step).
  """
  config = config or read_config(model_dir)
  if config is None:
    raise ConfigError(f"--model_dir={model_dir} has no {CONFIG_FILE}: not a training "
                      "directory")
  path = checkpoint or tf.train.latest_checkpoint(str(model_dir))
  if path is None:
    raise ConfigError(f"--model_dir={model_dir} has no checkpoint")
  # Rebuild under the run's dtype policy: a mixed-precision run's checkpoint holds
  # loss-scale optimizer state and its layers compute in half precision.
  previous_policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(_POLICIES[config.mixed_precision])
  try:
    model = build_model(config)
    compile_model(model, config)
    build_optimizers(model)
  finally:
    keras.mixed_precision.set_global_policy(previous_policy)
  make_checkpoint(model).restore(path).expect_partial().assert_existing_objects_matched()
  return model, config, _step(model)


# ============================================================================ evaluate
def evaluate(model, config, seed=0, report_dir=None):
  """The evaluation protocol of the model's family, as a JSON-able dict.

  multimodal (tfmvae.evaluation): importance-sampled log p(image), log p(image,
  second), log p(image | second) with K = eval_samples over eval_sequences test
  examples, and cross-modal coherence (image -> label accuracy; label -> image
  judged by a classifier trained on the training split, cached).
  video (tfmvae.evaluation_video): per-frame MSE/MAE/PSNR/SSIM curves (both SSIM
  conventions) over eval_future frames after n_past, the best of eval_samples
  samples per sequence by the SSIM of `eval_ssim` ("gaussian" | "svg") and each
  metric's own best, and the copy-last-frame and blank-frame baselines; samples
  are drawn with `predict(..., batchnorm=generation_batchnorm)` when
  generation_batchnorm is not "moving" (the model's default). With `report_dir`,
  also its plot and GIFs (`evaluation_video.write_report`).
  """
  if config.kind == "video":
    return _evaluate_video(model, config, seed, report_dir)
  return _evaluate_multimodal(model, config, seed)


def _evaluate_multimodal(model, config, seed):
  from tfmvae import evaluation  # pylint: disable=g-import-not-at-top
  second = second_modality_name(config)
  n = config.eval_sequences
  test = raw_dataset(config, "test", num=n).take(n)
  k = config.eval_samples
  ll = dict(num_samples=k, seed=seed, max_examples=n, batch_size=min(100, n))
  out = {"protocol": "mvae", "num_examples": n, "num_importance_samples": k}
  out["log_p_image"] = evaluation.importance_log_likelihood(model, test, ("image",), **ll)
  out[f"log_p_image_{second}"] = evaluation.importance_log_likelihood(
      model, test, ("image", second), **ll)
  out[f"log_p_image_given_{second}"] = evaluation.importance_log_likelihood(
      model, test, ("image",), conditioned_on=(second,), **ll)
  train_examples = raw_dataset(config, "train", num=config.classifier_examples).take(
      config.classifier_examples)
  name = (f"{config.dataset}_{config.image_size}x{config.channels}_"
          f"{config.classifier_examples}_s{config.seed}")
  classifier = evaluation.train_classifier(train_examples, "image", second, name=name,
                                           epochs=config.classifier_epochs, seed=seed)
  out["classifier_test"] = evaluation.classifier_accuracy(classifier, test, "image", second)
  out["coherence"] = evaluation.cross_modal_coherence(
      model, test, classifier, "image", second, seed=seed, max_examples=n,
      batch_size=min(100, n))
  return out


def _evaluate_video(model, config, seed, report_dir=None):
  from tfmvae import evaluation_video as ev  # pylint: disable=g-import-not-at-top
  n = config.eval_sequences
  test = raw_dataset(config, "test", num=n).take(n)
  predict_kwargs = ({} if config.generation_batchnorm == "moving"
                    else {"batchnorm": config.generation_batchnorm})
  result = ev.evaluate_video_model(model, test, config.n_past, config.num_eval_future,
                                   num_samples=config.eval_samples, seed=seed,
                                   max_sequences=n, ssim=config.eval_ssim,
                                   predict_kwargs=predict_kwargs)
  if report_dir is not None:
    ev.write_report({config.model: result}, report_dir)
  out = {"protocol": "video_best_of_n"}
  out.update(_jsonable({k: v for k, v in result.items() if k != "examples"}))
  return out


def _jsonable(obj):
  if isinstance(obj, dict):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, (np.ndarray, tf.Tensor)):
    return _jsonable(np.asarray(obj).tolist())
  if isinstance(obj, (np.floating, np.integer)):
    return obj.item()
  if dataclasses.is_dataclass(obj):
    return _jsonable(dataclasses.asdict(obj))
  return obj


def write_json(obj, path):
  """Writes JSON atomically (temp file + rename); returns the path."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  with os.fdopen(fd, "w") as f:
    json.dump(_jsonable(obj), f, indent=2, sort_keys=True)
  os.chmod(tmp, 0o644)
  os.replace(tmp, path)
  return path


# ============================================================================ samples
def write_samples(model, config, output_dir, num=8, num_samples=4, seed=0):
  """PNG grids (multimodal) or GIFs + PNG strips (video) of the model's samples.

  multimodal: prior_samples.png, cross_modal.png (per row a real test image, then
  images generated from its label/attributes alone), reconstruction.png;
  mnist_pairs also label_to_image.png (rows: digits 0-9, `num_samples` each).
  video: prediction.png (future strips) and predictions.gif (per test sequence:
  the real video, then `num_samples` videos of the n_past real frames followed by
  a sampled continuation).

  Returns:
    list of written paths.
  """
  from tfmvae.data import visualize  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out_dir = pathlib.Path(output_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  batch = example_batch(config, num=num)
  written = []
  for name, grid in image_panels(model, config, batch, seed, num_samples).items():
    path = out_dir / f"{name}.png"
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    written.append(path)
  if config.kind == "video":
    frames = np.asarray(batch, np.float32)
    context = frames[:, :config.n_past]
    pred = np.asarray(model.predict(context, num_future=frames.shape[1] - config.n_past,
                                    num_samples=num_samples, seed=seed))
    videos = []
    for i in range(frames.shape[0]):
      videos.append(frames[i])
      videos.extend(np.concatenate([context[i], pred[i, s]]) for s in range(num_samples))
    written.append(visualize.save_video_gif(np.stack(videos), out_dir / "predictions.gif",
                                            ncols=num_samples + 1))
  elif config.dataset == "mnist_pairs":
    labels = np.eye(10, dtype=np.float32)
    gen = np.asarray(model.generate({"label": labels}, num_samples=num_samples,
                                    seed=seed)["image"])
    written.append(visualize.save_image_grid(gen.reshape((-1,) + gen.shape[2:]),
                                             out_dir / "label_to_image.png",
                                             ncols=num_samples))
  return written
