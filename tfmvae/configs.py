"""Experiment configs: one frozen dataclass, named presets, model/dataset registries.

Flag-free and TensorFlow-free (importing this module costs milliseconds), so the
binaries define their flags from it before TF loads, and Colab users build configs
directly:

    >>> from tfmvae import configs, train_lib
    >>> config = configs.get_preset("quickstart", model_dir="/tmp/qs", steps=200)
    >>> model, history = train_lib.train(config)

Design:
- `Config` holds every setting of one experiment; every family reads the shared
  fields it needs (`latent_dim`, `image_size`, `beta`, ...) and takes anything
  specific to it from `model_options` (extra keyword arguments of the model's
  constructor, e.g. `{"g_dim": 128, "rnn_size": 256}` for SVG).
- `MODELS` maps a model name to a `ModelSpec`: its kind ("multimodal" or "video")
  and the import path of its builder ("module:function"), resolved only when the
  model is built. A family whose module does not exist yet is still listed; asking
  for it gives a one-line `ConfigError`. `register_model` adds a family.
- `DATASETS` maps a dataset name to its kind; `PRESETS` maps a preset name to a
  `Config` (the paper settings of each experiment, plus "smoke" and "quickstart").
- `validate(config)` checks everything that needs no TensorFlow and raises
  `ConfigError` with one line naming the problem. Checks that need the networks
  (e.g. whether the conv nets take an image size) run when the model is built.
- Resume: `incompatible_fields(saved, new)` lists the fields that define the model
  and differ; fields in `RESUMABLE_FIELDS` (steps, logging, strategy, ...) may change
  between runs of the same model_dir.
"""
import dataclasses
import json
import os
from typing import Any, Dict, Optional, Tuple


class ConfigError(ValueError):
  """A bad or contradictory setting; the message is one line naming the problem."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A registered model family.

  Attributes:
    kind: "multimodal" (image + label/attributes datasets) or "video" (frames).
    builder: "module:function" of `builder(config) -> uncompiled keras.Model`.
    compile: "module:function" of `compile_fn(model, config)`; default: the
      single-optimizer compile of `tfmvae.train_lib`.
  """
  kind: str
  builder: str
  compile: str = "tfmvae.train_lib:compile_single"


MODELS: Dict[str, ModelSpec] = {
    "mvae": ModelSpec("multimodal", "tfmvae.train_lib:build_mvae"),
    "vaegan": ModelSpec("multimodal", "tfmvae.train_lib:build_vaegan",
                        "tfmvae.train_lib:compile_gan"),
    "svg_fp": ModelSpec("video", "tfmvae.train_lib:build_svg_fp"),
    "svg_lp": ModelSpec("video", "tfmvae.train_lib:build_svg_lp"),
    "video_mvae": ModelSpec("video", "tfmvae.train_lib:build_video_mvae"),
    "video_vaegan": ModelSpec("video", "tfmvae.train_lib:build_video_vaegan",
                              "tfmvae.train_lib:compile_gan"),
}

# Dataset name -> kind. Multimodal datasets yield {"image", <second modality>, "mask"};
# video datasets yield frames [T, H, W, C] (or {"frames", ...}).
DATASETS: Dict[str, str] = {
    "mnist_pairs": "multimodal",
    "shapes_pairs": "multimodal",
    "celeba": "multimodal",
    "moving_mnist": "video",
    "moving_shapes": "video",
}

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION = ("none", "float16", "bfloat16")
JIT_COMPILE = ("auto", "true", "false")
OPTIMIZERS = ("adam", "torch_adam", "rmsprop", "sgd")
IMAGE_LIKELIHOODS = ("bernoulli", "gaussian")
# Image networks of the MVAE family (tfmvae.modalities.NETWORKS): "auto" is conv
# for images; "mlp" is the 784-512-512 MLP of Wu & Goodman's MNIST model.
IMAGE_NETWORKS = ("auto", "conv", "mlp")
# SSIM convention selecting the best-of-N sample (tfmvae.metrics.SSIM_CONVENTIONS):
# "gaussian" (window 11, tf.image.ssim) or "svg" (SVG's skimage 7x7 box convention).
SSIM_CONVENTIONS = ("gaussian", "svg")
# BatchNorm statistics of video models at generation: "moving" (the moving
# averages, inference mode) or "batch" (the statistics of the predicted batch, as
# SVG's generate script, which keeps the networks in training mode).
GENERATION_BATCHNORM = ("moving", "batch")


def register_model(name: str, kind: str, builder: str,
                   compile: str = "tfmvae.train_lib:compile_single") -> None:  # pylint: disable=redefined-builtin
  """Adds (or replaces) a model family in `MODELS`."""
  if kind not in ("multimodal", "video"):
    raise ValueError(f"kind must be 'multimodal' or 'video', got {kind!r}")
  MODELS[name] = ModelSpec(kind, builder, compile)


@dataclasses.dataclass(frozen=True)
class Config:
  """Every setting of one experiment (defaults: a small MVAE on MNIST pairs).

  Run:
    model: model family, a key of `MODELS`.
    dataset: a key of `DATASETS`.
    model_dir: checkpoints, TensorBoard summaries and config.json go here.
    steps: total training steps (a resumed run continues up to this count).
    batch_size: global batch size (split across replicas).
    optimizer: "adam" (Keras), "torch_adam" (PyTorch's epsilon placement, eps 1e-8), "rmsprop"
      or "sgd" (for every optimizer of the model).
    learning_rate: learning rate (encoder/decoder optimizers of GAN families).
    beta_1: Adam's beta_1 (0.5 is common for GANs).
    discriminator_learning_rate: discriminator's rate; None: `learning_rate`.
    strategy: "default", "mirrored", "multi_worker" (reads TF_CONFIG) or "tpu".
    tpu: TPU name/address for TPUClusterResolver ("" = local / Colab TPU).
    mixed_precision: "none", "float16" (mixed_float16) or "bfloat16".
    jit_compile: "auto" (Keras decides), "true" or "false".
    seed: seed of weights, sampling and generated data.
  Schedule and logging:
    checkpoint_every: steps between checkpoints (a kill loses at most this many).
    max_checkpoints: checkpoints kept.
    summary_every: steps between scalar summaries (every loss term).
    image_every: steps between image summaries (0: only at the end).
    steps_per_epoch: steps per Keras epoch (progress bar and History granularity).
    validation_steps: validation batches at each epoch end (0: none).
    kl_warmup_steps: linear KL warm-up from 0 to `beta` (0: none).
    beta: final KL weight.
  Model (shared):
    latent_dim: size of z (per step for video models).
    hidden_units, filters, batch_norm: MVAE/VAE-GAN networks (see tfmvae.modalities).
    image_likelihood: "bernoulli" or "gaussian" pixel likelihood (MVAE family).
    image_network: image encoder/decoder of the MVAE family: "auto" (= "conv"),
      "conv" or "mlp" (dense `hidden_units` on flattened pixels, the MVAE paper's
      MNIST networks).
    label_weight: lambda of the second modality (label / attributes).
    num_subsets: k random subsets of the sub-sampled MVAE objective.
    model_options: extra keyword arguments of the family's constructor.
  Data:
    data_dir: dataset folder ("" = the loader's default, e.g. $TFMVAE_MNIST_DIR).
    manual_dir: TFDS manual-download folder (CelebA offline).
    image_size, channels: frame/image side and channels.
    label_fraction: share of examples that keep their second modality.
    attributes: CelebA attribute selection ("mvae18", "all" or comma names).
    shuffle_buffer: shuffle buffer of finite training sets.
    n_past, n_future: conditioning and predicted frames (training length is the sum).
    num_digits, digit_size, stochastic, num_shapes: Moving MNIST / Moving Shapes.
  Evaluation:
    eval_future: predicted frames in evaluation (0: n_future).
    eval_sequences: test sequences / examples evaluated.
    eval_samples: samples per sequence (best-of-N) or importance samples.
    eval_ssim: SSIM convention that picks the best-of-N sample of video models:
      "gaussian" (window 11) or "svg" (SVG's 7x7 box window, data_range 2); both
      are reported either way.
    generation_batchnorm: BatchNorm statistics when video models generate for
      evaluation: "moving" (moving averages, the default) or "batch" (batch
      statistics, passed to `model.predict(..., batchnorm="batch")`).
    classifier_examples, classifier_epochs: training of the coherence classifier
      (multimodal models; cached per dataset under $TFMVAE_CACHE_DIR).
    eval_after_training: after training, write model_dir/metrics.json (`evaluate`)
      and model_dir/samples/ (`write_samples`: PNGs, and a GIF for video models).
  """
  model: str = "mvae"
  dataset: str = "mnist_pairs"
  model_dir: str = ""
  steps: int = 1000
  batch_size: int = 100
  optimizer: str = "adam"
  learning_rate: float = 1e-3
  beta_1: float = 0.9
  discriminator_learning_rate: Optional[float] = None
  strategy: str = "default"
  tpu: str = ""
  mixed_precision: str = "none"
  jit_compile: str = "auto"
  seed: int = 0
  checkpoint_every: int = 500
  max_checkpoints: int = 3
  summary_every: int = 100
  image_every: int = 1000
  steps_per_epoch: int = 500
  validation_steps: int = 0
  kl_warmup_steps: int = 0
  beta: float = 1.0
  latent_dim: int = 64
  hidden_units: Tuple[int, ...] = (512, 512)
  filters: int = 32
  batch_norm: bool = False
  image_likelihood: str = "bernoulli"
  image_network: str = "auto"
  label_weight: float = 10.0
  num_subsets: int = 0
  model_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
  data_dir: str = ""
  manual_dir: str = ""
  image_size: int = 28
  channels: int = 1
  label_fraction: float = 1.0
  attributes: str = "mvae18"
  shuffle_buffer: int = 10000
  n_past: int = 5
  n_future: int = 10
  num_digits: int = 2
  digit_size: int = 28
  stochastic: bool = False
  num_shapes: int = 1
  eval_future: int = 0
  eval_sequences: int = 100
  eval_samples: int = 10
  eval_ssim: str = "gaussian"
  generation_batchnorm: str = "moving"
  classifier_examples: int = 10000
  classifier_epochs: int = 5
  eval_after_training: bool = False

  def __post_init__(self):
    object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
    object.__setattr__(self, "model_options", dict(self.model_options))
    jit = self.jit_compile
    if isinstance(jit, bool):
      object.__setattr__(self, "jit_compile", "true" if jit else "false")

  # ------------------------------------------------------------ derived values
  @property
  def kind(self) -> str:
    """"multimodal" or "video" (from the model registry)."""
    return MODELS[self.model].kind if self.model in MODELS else "unknown"

  @property
  def seq_len(self) -> int:
    """Training sequence length n_past + n_future."""
    return self.n_past + self.n_future

  @property
  def num_eval_future(self) -> int:
    return self.eval_future or self.n_future

  def replace(self, **changes) -> "Config":
    """A copy with some fields changed (unknown names raise ConfigError)."""
    unknown = sorted(set(changes) - set(field_names()))
    if unknown:
      raise ConfigError(f"unknown config fields {unknown}")
    return dataclasses.replace(self, **changes)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "Config":
    values = json.loads(text)
    known = set(field_names())
    return cls(**{k: v for k, v in values.items() if k in known})


def field_names():
  return [f.name for f in dataclasses.fields(Config)]


# Fields that may differ between runs of one model_dir: they do not change the model.
RESUMABLE_FIELDS = frozenset({
    "model_dir", "steps", "batch_size", "learning_rate", "beta_1",
    "discriminator_learning_rate", "strategy", "tpu", "mixed_precision", "jit_compile",
    "checkpoint_every", "max_checkpoints", "summary_every", "image_every",
    "steps_per_epoch", "validation_steps", "data_dir", "manual_dir", "shuffle_buffer",
    "eval_future", "eval_sequences", "eval_samples", "eval_ssim", "generation_batchnorm",
    "label_fraction",
    "classifier_examples", "classifier_epochs", "eval_after_training",
})


def incompatible_fields(saved: Config, new: Config):
  """[(field, saved value, new value)] of model-defining fields that differ."""
  out = []
  for name in field_names():
    if name in RESUMABLE_FIELDS:
      continue
    a, b = getattr(saved, name), getattr(new, name)
    if a != b:
      out.append((name, a, b))
  return out


# ------------------------------------------------------------------ validation
# Fixed image geometry of datasets that cannot be resized.
_FIXED_GEOMETRY = {"mnist_pairs": (28, 1)}


def validate(config: Config) -> Config:
  """Checks a config without TensorFlow; returns it or raises ConfigError."""
  c = config
  if c.model not in MODELS:
    raise ConfigError(f"unknown model {c.model!r}; choose one of {sorted(MODELS)}")
  if c.dataset not in DATASETS:
    raise ConfigError(f"unknown dataset {c.dataset!r}; choose one of {sorted(DATASETS)}")
  if DATASETS[c.dataset] != c.kind:
    raise ConfigError(f"model {c.model!r} is a {c.kind} model but dataset {c.dataset!r} is "
                      f"{DATASETS[c.dataset]}: pick a {c.kind} dataset")
  for name, allowed in (("strategy", STRATEGIES), ("mixed_precision", MIXED_PRECISION),
                        ("jit_compile", JIT_COMPILE), ("optimizer", OPTIMIZERS),
                        ("image_likelihood", IMAGE_LIKELIHOODS),
                        ("image_network", IMAGE_NETWORKS), ("eval_ssim", SSIM_CONVENTIONS),
                        ("generation_batchnorm", GENERATION_BATCHNORM)):
    if getattr(c, name) not in allowed:
      raise ConfigError(f"--{name}={getattr(c, name)!r} is not one of {list(allowed)}")
  for name in ("steps", "batch_size", "checkpoint_every", "max_checkpoints",
               "summary_every", "steps_per_epoch", "latent_dim", "image_size", "channels",
               "eval_sequences", "eval_samples", "classifier_examples",
               "classifier_epochs"):
    if getattr(c, name) <= 0:
      raise ConfigError(f"--{name} must be positive, got {getattr(c, name)}")
  for name in ("image_every", "validation_steps", "kl_warmup_steps", "num_subsets",
               "eval_future"):
    if getattr(c, name) < 0:
      raise ConfigError(f"--{name} must be >= 0, got {getattr(c, name)}")
  if c.learning_rate <= 0:
    raise ConfigError(f"--learning_rate must be positive, got {c.learning_rate}")
  if not 0.0 <= c.label_fraction <= 1.0:
    raise ConfigError(f"--label_fraction must be in [0, 1], got {c.label_fraction}")
  if c.channels not in (1, 3):
    raise ConfigError(f"--channels must be 1 or 3, got {c.channels}")
  if c.dataset in _FIXED_GEOMETRY:
    size, channels = _FIXED_GEOMETRY[c.dataset]
    if (c.image_size, c.channels) != (size, channels):
      raise ConfigError(f"dataset {c.dataset!r} has {size}x{size}x{channels} images; got "
                        f"--image_size={c.image_size} --channels={c.channels}")
  if c.dataset == "celeba" and c.channels != 3:
    raise ConfigError(f"dataset 'celeba' has RGB images: --channels must be 3, got {c.channels}")
  if c.dataset == "moving_mnist" and c.channels != 1:
    raise ConfigError(f"dataset 'moving_mnist' is grayscale: --channels must be 1, got "
                      f"{c.channels}")
  if c.kind == "video":
    if c.n_past < 1 or c.n_future < 1:
      raise ConfigError(f"--n_past and --n_future must be >= 1, got {c.n_past}, {c.n_future}")
    if c.dataset == "moving_mnist" and c.digit_size > c.image_size:
      raise ConfigError(f"--digit_size={c.digit_size} exceeds --image_size={c.image_size}")
  for name in ("data_dir", "manual_dir"):
    path = getattr(c, name)
    if path and not os.path.isdir(path):
      raise ConfigError(f"--{name}={path} does not exist or is not a directory")
  return config


# ------------------------------------------------------------------ presets
def _video(**kw):
  base = dict(dataset="moving_mnist", image_size=64, channels=1, batch_size=100,
              learning_rate=2e-3, n_past=5, n_future=10, eval_future=20, num_digits=2,
              digit_size=32, stochastic=True, latent_dim=10, beta=1e-4, steps=300 * 600,
              steps_per_epoch=600, checkpoint_every=600, summary_every=100,
              image_every=3000, eval_samples=100, eval_sequences=256)
  base.update(kw)
  return Config(**base)


_SVG_OPTIONS = {"g_dim": 128, "rnn_size": 256, "filters": 64}
# Method I / II options: learned prior, skips from the previous (at generation:
# generated) frame, cross-reconstruction term.
_METHOD_OPTIONS = dict(_SVG_OPTIONS, prior="learned", skip_source="previous",
                       cross_reconstruction=True)

PRESETS: Dict[str, Config] = {
    # MVAE on MNIST (Wu & Goodman 2018): z 64, batch 100, Adam 1e-3, lambda_label 10,
    # MLP 512 Swish, KL annealed over the first epochs (10 epochs of 500 steps here).
    # subset_likelihood="all" scores every subset's z on every present modality: the
    # paper's objective ("own") gives 0.40 image->label on our 8k digits (BENCHMARKS.md).
    "mnist_mvae": Config(model="mvae", dataset="mnist_pairs", image_size=28, channels=1,
                         latent_dim=64, batch_size=100, learning_rate=1e-3,
                         hidden_units=(512, 512), label_weight=10.0, image_network="mlp",
                         model_options={"subset_likelihood": "all"},
                         steps=50 * 500, steps_per_epoch=500, kl_warmup_steps=10 * 500,
                         checkpoint_every=500, image_every=2500),
    # MVAE on CelebA 64x64 + 18 attributes: z 100, Adam 1e-4, lambda 10, BN conv nets.
    "celeba_mvae": Config(model="mvae", dataset="celeba", image_size=64, channels=3,
                          latent_dim=100, batch_size=100, learning_rate=1e-4,
                          hidden_units=(512,), filters=32, batch_norm=True,
                          image_likelihood="bernoulli", label_weight=10.0,
                          steps=100 * 1600, steps_per_epoch=1600,
                          kl_warmup_steps=20 * 1600, checkpoint_every=1000,
                          image_every=5000),
    # VAE-GAN (Larsen et al. 2016) on CelebA 64x64: z 128, RMSProp 3e-4, batch 64.
    "celeba_vaegan": Config(model="vaegan", dataset="celeba", image_size=64, channels=3,
                            latent_dim=128, batch_size=64, optimizer="rmsprop",
                            learning_rate=3e-4, hidden_units=(1024,), filters=64,
                            batch_norm=True, label_weight=10.0, steps=50 * 2500,
                            steps_per_epoch=2500, checkpoint_every=1000, image_every=5000),
    # SVG on SM-MNIST (Denton & Fergus 2018): 64x64, 2 digits of 32x32, batch 100,
    # Adam 2e-3, n_past 5, n_future 10, z 10, g 128, LSTM 256, beta 1e-4, 300 x 600 steps.
    # Their optimizer is PyTorch's Adam (epsilon 1e-8 after the bias correction).
    "mm_svg_fp": _video(model="svg_fp", optimizer="torch_adam",
                        model_options=dict(_SVG_OPTIONS)),
    "mm_svg_lp": _video(model="svg_lp", optimizer="torch_adam",
                        model_options=dict(_SVG_OPTIONS)),
    # Method I / II on SM-MNIST with SVG's data and optimizer settings.
    # Method I uses a Bernoulli pixel likelihood summed over pixels: beta 1 is the ELBO;
    # z 32 per step (VideoMVAE's default).
    "mm_method1": _video(model="video_mvae", latent_dim=32, beta=1.0,
                         model_options=dict(_METHOD_OPTIONS)),
    # Method II: three optimizers (encoder, decoder, discriminator), DCGAN's Adam
    # 2e-4 / beta_1 0.5 (SVG's 2e-3 is for a single VAE objective).
    "mm_method2": _video(model="video_vaegan", latent_dim=32, beta=1.0,
                         learning_rate=2e-4, beta_1=0.5, model_options=dict(_METHOD_OPTIONS)),
    # Deterministic Moving MNIST, 10 -> 10 (OpenSTL convention: two 28x28 digits,
    # batch 16, Adam 1e-3, 200 epochs of 10,000 sequences = 125,000 steps).
    "mm_deterministic": _video(model="video_mvae", stochastic=False, digit_size=28,
                               n_past=10, n_future=10, eval_future=10, eval_samples=1,
                               latent_dim=32, beta=1.0, learning_rate=1e-3, batch_size=16,
                               steps=200 * 625, steps_per_epoch=625, checkpoint_every=625,
                               model_options=dict(_METHOD_OPTIONS)),
    # The headline video model (Method I with a learned prior and the cross
    # reconstruction term) on Moving Shapes at 32x32: ~5 minutes on 2 CPU cores,
    # then metrics.json and samples/predictions.gif in model_dir.
    "quickstart": Config(model="video_mvae", dataset="moving_shapes", image_size=32,
                         channels=1, batch_size=16, learning_rate=2e-3, n_past=3,
                         n_future=5, eval_future=8, latent_dim=8, beta=1.0,
                         steps=300, steps_per_epoch=50, checkpoint_every=50,
                         summary_every=10, image_every=100, eval_sequences=32,
                         eval_samples=5, eval_after_training=True,
                         model_options={"g_dim": 64, "rnn_size": 64, "filters": 16,
                                        "prior": "learned", "cross_reconstruction": True}),
    # Seconds: a tiny MVAE on generated shapes (no downloads); used by the tests.
    "smoke": Config(model="mvae", dataset="shapes_pairs", image_size=16, channels=1,
                    latent_dim=4, hidden_units=(16,), filters=4, batch_size=8,
                    learning_rate=1e-3, steps=6, steps_per_epoch=3, checkpoint_every=2,
                    summary_every=2, image_every=3, kl_warmup_steps=4,
                    shuffle_buffer=16, eval_sequences=16, eval_samples=3,
                    classifier_examples=64, classifier_epochs=1),
}


def get_preset(name: str, **overrides) -> Config:
  """A preset with some fields replaced; unknown names raise ConfigError."""
  if name not in PRESETS:
    raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
  return PRESETS[name].replace(**overrides)
