"""Stochastic Video Generation: SVG-FP and SVG-LP (Denton & Fergus, ICML 2018).

Generative model (t = 1 .. T-1 indexes target frames, 0-based frame x_0 first):

    h_{t-1} = Enc(x_{t-1}),                            frame code [B, g_dim]
    z_t ~ q(z_t | x_{0:t}) = N(mu_phi(h_{1:t}), sigma_phi(h_{1:t}))   posterior LSTM
    p(z_t) = N(0, I) (FP)  or  N(mu_psi(h_{0:t-1}), sigma_psi(h_{0:t-1}))  (LP)
    g_t = LSTM_theta(h_{t-1}, z_t)                     predictor, tanh [B, g_dim]
    x~_t = Dec(g_t, skips(x_{s(t)}))                   sigmoid frame [B, H, W, C]

Skip connections (edenton/svg train_svg_lp.py): the decoder's skips come from the
frame the encoder read at step t, x_{t-1}, while t < n_past, and stay fixed at the
last skips taken afterwards. With 0-based target index t this is
s(t) = min(t - 1, n_past - 2): the official code's `i < n_past` rule, which for
n_past = 5 reuses frame x_3 (its quirk, kept). `last_frame_skip=True` uses
s(t) = t - 1 always (the official flag of that name; at generation the previous
generated frame).

Loss (per example, then averaged over the global batch with
`tf.nn.compute_average_loss` semantics), exactly the official normalization:

    L = sum_{t=1}^{T-1} [ mean_{pixels} (x_t - x~_t)**2 + beta KL(q(z_t|.) || p(z_t)) ]

(nn.MSELoss averages over pixels and batch; the official KL sums over z and
divides by the batch size). Training uses teacher forcing (ground-truth x_{t-1}).
The `mse` and `kl` trackers report per-step means (divided by T - 1), as the
official log line.

Shapes: frames [B, T, H, W, C] float32 in [0, 1]; T is dynamic (tf.while_loop over
time, no per-frame Python work); H = W = image_size.

Defaults are the paper's SM-MNIST config: DCGAN-64 with skips, g_dim 128, z_dim 10,
predictor 2 x 256 LSTM, posterior and prior 1 x 256, beta 1e-4, n_past 5,
n_future 10, and, when `compile()` gets no optimizer, PyTorch's Adam (lr 2e-3,
beta_1 0.9, epsilon 1e-8 added after the bias correction: `tfmvae.optimizers.TorchAdam`).

Numerics are the authors' by default, so that their trained weights give their
outputs (`tfmvae.convert.svg_from_pytorch`; tested tensor for tensor against
edenton/svg): BatchNorm epsilon 1e-5, momentum 0.1 (Keras 0.9), unbiased moving
variance; in training, BatchNorm statistics per time step (their code runs the
frame networks once per step; the encoder runs twice on each frame 1..T-2, so its
moving averages take those frames twice), computed on the whole [B * T] batch at
once (`GroupedBatchNormalization`); SVG's `init_weights` (convolutions and Linear
N(0, 0.02), zero biases, BatchNorm gamma N(1, 0.02)) and PyTorch's LSTMCell init;
unclipped log-variances. Each is an argument (`batchnorm_*`, `initialization`,
`clip_logvar`), for other models.

Generation (`predict`) uses BatchNorm moving statistics by default. The authors'
`generate_svg_lp.py` keeps encoder and decoder BatchNorm in training mode, so every
frame batch is normalized with its own statistics (per frame and per sample, over
the sequences of the batch); `predict(..., batchnorm="batch")` reproduces that,
without touching the moving averages. Their published numbers were made that way;
its scores depend on the batch (a batch of one sequence normalizes each frame by
itself).

This module also holds the small helpers both video models share (input
conventions, checks, seeds): `frames_from_data`, `check_frames`, `as_seed`.
"""
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfmvae.layers import GaussianHead
from tfmvae.models.steps import SingleOptimizerSteps
from tfmvae.optimizers import TorchAdam
from tfmvae.models.tracking import CheckpointAllVariables
from tfmvae.networks.frame import FrameDecoder
from tfmvae.networks.frame import FrameEncoder
from tfmvae.networks.frame import StackedLSTM
from tfmvae.networks.frame import dense_initializer

tfd = tfp.distributions


# ------------------------------------------------------------------ helpers
def frames_from_data(data):
  """The frames of a `fit`/`evaluate` batch: a tensor, dict["frames"], or (x, ...)."""
  if isinstance(data, (tuple, list)):
    data = data[0]
  if isinstance(data, dict):
    if "frames" not in data:
      raise ValueError(f"a dict batch needs a 'frames' key, got keys {sorted(data)}")
    data = data["frames"]
  return tf.cast(tf.convert_to_tensor(data), tf.float32)


def check_frames(frames, image_size, channels, min_frames, what="frames"):
  """Checks a [B, T, H, W, C] tensor against a video model (static shapes).

  Raises:
    ValueError: naming the rank, frame size, channels or length that is wrong.
  """
  shape = frames.shape
  if shape.rank != 5:
    raise ValueError(f"{what} must be [batch, time, height, width, channels], got shape "
                     f"{shape}")
  h, w, c = shape[2], shape[3], shape[4]
  if (h is not None and h != image_size) or (w is not None and w != image_size):
    raise ValueError(f"{what} have frame size {h}x{w}, the model expects "
                     f"{image_size}x{image_size}")
  if c is not None and c != channels:
    raise ValueError(f"{what} have {c} channels, the model expects {channels}")
  if shape[1] is not None and shape[1] < min_frames:
    raise ValueError(f"{what} have {shape[1]} frames, at least {min_frames} are needed")


def as_seed(seed):
  """int / int pair / None -> int32[2] stateless seed (None: a fresh random seed)."""
  if seed is None:
    return tf.constant(np.random.randint(0, 2**31 - 1, size=2), tf.int32)
  if isinstance(seed, (int, np.integer)):
    return tf.constant([int(seed), 0], tf.int32)
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
  if seed.shape != (2,):
    raise ValueError(f"seed must be an int or an int32[2] tensor, got shape {seed.shape}")
  return seed


def flatten_time(x):
  """[B, T, ...] -> [B * T, ...]."""
  shape = tf.shape(x)
  return tf.reshape(x, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


def unflatten_time(x, batch):
  """[B * T, ...] -> [B, T, ...]."""
  shape = tf.shape(x)
  return tf.reshape(x, tf.concat([[batch, shape[0] // batch], shape[1:]], 0))


def rollout_output(frames_ta, batch, num_samples):
  """TensorArray of F frames [B * S, H, W, C] -> [B, S, F, H, W, C]."""
  x = frames_ta.stack()  # [F, B*S, H, W, C]
  x = tf.transpose(x, [1, 0, 2, 3, 4])
  shape = tf.shape(x)
  return tf.reshape(x, tf.concat([[batch, num_samples], shape[1:]], 0))


PREDICT_SIGNATURE = (
    tf.TensorSpec([None, None, None, None, None], tf.float32, name="context"),
    tf.TensorSpec([], tf.int32, name="num_future"),
    tf.TensorSpec([], tf.int32, name="num_samples"),
    tf.TensorSpec([2], tf.int32, name="seed"),
)


BATCHNORM_STATISTICS = ("per_frame", "all_frames")
GENERATION_BATCHNORM = ("moving", "batch")


def mvn(loc, scale):
  """Diagonal Gaussian over the last axis (batch shape = leading axes)."""
  return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)


# ------------------------------------------------------------------ model
@keras.saving.register_keras_serializable(package="tfmvae")
class SVG(SingleOptimizerSteps, CheckpointAllVariables, keras.Model):
  """SVG-FP / SVG-LP video predictor with a compiled time loop.

  Args:
    prior: "learned" (SVG-LP, prior LSTM p(z_t | x_{0:t-1})) or "fixed" (SVG-FP,
      N(0, I)).
    image_size: frame side (multiple of 16; 64 in the paper).
    channels: frame channels.
    g_dim: frame code size (128).
    z_dim: latent size per step (10).
    rnn_size: LSTM units (256).
    predictor_layers, posterior_layers, prior_layers: LSTM depths (2, 1, 1).
    filters: DCGAN width (64).
    beta: KL weight (1e-4).
    n_past: conditioning frames used for the training skip rule (5).
    n_future: predicted frames in training (10); documentation of the intended
      sequence length n_past + n_future (the data decides T).
    skip: decoder skip connections.
    last_frame_skip: skips from the previous frame at every step (see module doc).
    seed: seed of the training-time reparameterization noise.
    batchnorm_epsilon, batchnorm_momentum, unbiased_moving_variance: BatchNorm of
      the frame networks (PyTorch's 1e-5, 0.9 (their 0.1), True).
    batchnorm_statistics: "per_frame" (training statistics per time step, as the
      authors' step-by-step code) or "all_frames" (over all B * T frames at once).
    initialization: "svg" (the authors' init, module doc) or "keras" (Keras'
      defaults for the Dense and LSTM weights).
    clip_logvar: clip the heads' log-variances to [-12, 8] (the authors: no clip).

  Call arguments:
    frames: [B, T, H, W, C]; returns the teacher-forced predictions x~_{1:T-1}
      [B, T-1, H, W, C] decoded with the posterior means.

  Example:
    >>> model = SVG(prior="learned", image_size=64)
    >>> model.compile()  # Adam(2e-3)
    >>> model.fit(dataset_of_frames, steps_per_epoch=600, epochs=300)
    >>> samples = model.predict(frames[:, :5], num_future=20, num_samples=100, seed=0)
    >>> authors = model.predict(frames[:, :5], 20, num_samples=100, seed=0, batchnorm="batch")

  Reference:
    Denton & Fergus, "Stochastic Video Generation with a Learned Prior", ICML 2018,
    arXiv:1802.07687; code github.com/edenton/svg.
  """

  def __init__(self, prior="learned", image_size=64, channels=1, g_dim=128, z_dim=10,
               rnn_size=256, predictor_layers=2, posterior_layers=1, prior_layers=1,
               filters=64, beta=1e-4, n_past=5, n_future=10, skip=True, last_frame_skip=False,
               seed=None, batchnorm_epsilon=1e-5, batchnorm_momentum=0.9,
               unbiased_moving_variance=True, batchnorm_statistics="per_frame",
               initialization="svg", clip_logvar=False, **kwargs):
    super().__init__(**kwargs)
    if prior not in ("learned", "fixed"):
      raise ValueError(f"prior must be 'learned' or 'fixed', got {prior!r}")
    if batchnorm_statistics not in BATCHNORM_STATISTICS:
      raise ValueError(f"batchnorm_statistics must be one of {BATCHNORM_STATISTICS}, got "
                       f"{batchnorm_statistics!r}")
    if n_past < 2 and not last_frame_skip:
      raise ValueError(f"n_past={n_past}: SVG's skip rule needs n_past >= 2 "
                       "(or last_frame_skip=True)")
    self.prior_type = prior
    self.image_size = image_size
    self.channels = channels
    self.g_dim = g_dim
    self.z_dim = z_dim
    self.rnn_size = rnn_size
    self.predictor_layers = predictor_layers
    self.posterior_layers = posterior_layers
    self.prior_layers = prior_layers
    self.filters = filters
    self.beta = float(beta)
    self.n_past = n_past
    self.n_future = n_future
    self.skip = skip
    self.last_frame_skip = last_frame_skip
    self.seed = seed
    self.batchnorm_epsilon = float(batchnorm_epsilon)
    self.batchnorm_momentum = float(batchnorm_momentum)
    self.unbiased_moving_variance = bool(unbiased_moving_variance)
    self.batchnorm_statistics = batchnorm_statistics
    self.initialization = initialization
    self.clip_logvar = bool(clip_logvar)
    bn = dict(batchnorm_epsilon=self.batchnorm_epsilon,
              batchnorm_momentum=self.batchnorm_momentum,
              unbiased_moving_variance=self.unbiased_moving_variance)
    self.encoder = FrameEncoder(g_dim, image_size=image_size, channels=channels,
                                filters=filters, name="encoder", **bn)
    self.decoder = FrameDecoder(image_size=image_size, channels=channels, filters=filters,
                                skip=skip, name="decoder", **bn)
    rnn = dict(initialization=initialization)
    head = dict(kernel_initializer=dense_initializer(initialization))
    if not clip_logvar:
      head.update(min_logvar=None, max_logvar=None)
    self.posterior_rnn = StackedLSTM(rnn_size, posterior_layers, name="posterior_rnn", **rnn)
    self.posterior_head = GaussianHead(z_dim, name="posterior_head", **head)
    if prior == "learned":
      self.prior_rnn = StackedLSTM(rnn_size, prior_layers, name="prior_rnn", **rnn)
      self.prior_head = GaussianHead(z_dim, name="prior_head", **head)
    self.predictor = StackedLSTM(rnn_size, predictor_layers, output_dim=g_dim,
                                 output_activation="tanh", name="predictor", **rnn)
    self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
    # Steps run (skipped mixed-precision steps included), the binaries' step count.
    self.train_steps = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                       trainable=False, name="train_steps",
                                       aggregation="only_first_replica")
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.mse_tracker = keras.metrics.Mean(name="mse")
    self.kl_tracker = keras.metrics.Mean(name="kl")
    self.build()

  @property
  def learned_prior(self):
    return self.prior_type == "learned"

  @property
  def min_context(self):
    """Shortest context `predict` accepts (2 with SVG's skip rule)."""
    return 1 if self.last_frame_skip else 2

  def build(self, input_shape=None):
    """Creates every weight from the constructor's sizes (no data needed)."""
    if self.built:
      return
    self.encoder.build((None, self.image_size, self.image_size, self.channels))
    self.decoder.build((None, self.g_dim))
    self.posterior_rnn.build((None, None, self.g_dim))
    self.posterior_head.build((None, self.rnn_size))
    if self.learned_prior:
      self.prior_rnn.build((None, None, self.g_dim))
      self.prior_head.build((None, self.rnn_size))
    self.predictor.build((None, None, self.g_dim + self.z_dim))
    self.built = True

  def compile(self, optimizer=None, **kwargs):
    """Keras compile; the default optimizer is SVG's: PyTorch's Adam(lr 2e-3, beta_1 0.9)."""
    if optimizer is None:
      optimizer = TorchAdam(learning_rate=2e-3, beta_1=0.9)
    super().compile(optimizer=optimizer, **kwargs)

  def compile_from_config(self, config):
    """Restores the compiled optimizer on `.keras` reload (custom `compile`)."""
    config = keras.saving.deserialize_keras_object(config)
    self.compile(**config)
    if self.built:
      self.optimizer.build(self.trainable_variables)

  # ---------------------------------------------------------------- pieces
  def _encode(self, frames, training, **batchnorm):
    """Frame codes as float32 (the latents' dtype) and the decoder skips.

    Under a mixed policy the frame nets compute in float16; the codes meet float32
    latents and noise, so they are cast here (the LSTMs cast their inputs back).
    `batchnorm`: `FrameEncoder`'s groups / batch_statistics / update_counts.
    """
    h, skips = self.encoder(frames, training=training, **batchnorm)
    return tf.cast(h, tf.float32), skips

  def _decode(self, g, skips, training, **batchnorm):
    """Decoder frames in float32 (float16 inside under a mixed policy)."""
    return tf.cast(self.decoder(g, skips, training=training, **batchnorm), tf.float32)

  def _frame_groups(self, groups):
    """BatchNorm groups for a b-major [B * G] batch: G per frame, None for all frames."""
    return groups if self.batchnorm_statistics == "per_frame" else None

  def _skip_index(self, num_targets):
    """Frame index s(t) of the decoder skips for targets t = 1..num_targets: [T-1]."""
    t = tf.range(1, num_targets + 1)
    if self.last_frame_skip:
      return t - 1
    return tf.minimum(t - 1, self.n_past - 2)

  def _prior_params(self, h_prev):
    """p(z_t) parameters for every step from frame codes h_{0:t-1} [B, T', g]."""
    if self.learned_prior:
      feat, _ = self.prior_rnn(h_prev)
      return self.prior_head(feat)
    zeros = tf.zeros(tf.concat([tf.shape(h_prev)[:-1], [self.z_dim]], 0))
    return zeros, tf.ones_like(zeros)

  def compute_terms(self, frames, training=False, use_mean=False, posterior_noise=None):
    """Teacher-forced pass over a sequence: predictions and loss terms.

    Args:
      frames: [B, T, H, W, C], T >= 2.
      training: BatchNorm mode.
      use_mean: decode with the posterior means instead of samples.
      posterior_noise: optional [B, T-1, z_dim] standard-normal noise for
        z_t = mu + sigma * noise (default: drawn from the model's seed generator).

    Returns:
      dict: "prediction" [B, T-1, H, W, C]; "mse" [B, T-1] per-step mean squared
      error over pixels; "kl" [B, T-1] KL(q || p) per step (summed over z);
      "loss" [B] = sum_t (mse + beta kl); "posterior" and "prior": (loc, scale)
      [B, T-1, z_dim].
    """
    batch, steps = tf.shape(frames)[0], tf.shape(frames)[1]
    # The authors encode x_{t-1} and x_t at every step t: frames 1..T-2 twice.
    encoder_updates = tf.concat([[1], tf.fill([steps - 2], 2), [1]], 0)
    h, skips = self._encode(flatten_time(frames), training=training,
                            groups=self._frame_groups(steps), update_counts=(
                                encoder_updates if self._frame_groups(steps) is not None
                                else None))
    h = unflatten_time(h, batch)  # [B, T, g]
    h_prev, h_target = h[:, :-1], h[:, 1:]
    post_feat, _ = self.posterior_rnn(h_target)
    q_loc, q_scale = self.posterior_head(post_feat)
    p_loc, p_scale = self._prior_params(h_prev)
    if use_mean:
      z = q_loc
    else:
      if posterior_noise is None:
        posterior_noise = keras.random.normal(tf.shape(q_loc), seed=self.seed_generator)
      z = q_loc + q_scale * tf.cast(posterior_noise, q_loc.dtype)
    g, _ = self.predictor(tf.concat([h_prev, z], axis=-1))
    index = self._skip_index(steps - 1)
    dec_skips = [flatten_time(tf.gather(unflatten_time(s, batch), index, axis=1))
                 for s in skips] if self.skip else None
    pred = unflatten_time(self._decode(flatten_time(g), dec_skips, training=training,
                                       groups=self._frame_groups(steps - 1)), batch)
    mse = tf.reduce_mean(tf.square(pred - frames[:, 1:]), axis=[2, 3, 4])
    kl = tfd.kl_divergence(mvn(q_loc, q_scale), mvn(p_loc, p_scale))
    loss = tf.reduce_sum(mse + self.beta * kl, axis=1)
    return {"prediction": pred, "mse": mse, "kl": kl, "loss": loss,
            "posterior": (q_loc, q_scale), "prior": (p_loc, p_scale)}

  # ---------------------------------------------------------------- training
  @property
  def metrics(self):
    return [self.loss_tracker, self.mse_tracker, self.kl_tracker]

  def _frames(self, data):
    frames = frames_from_data(data)
    check_frames(frames, self.image_size, self.channels, 2)
    return frames

  def _update_trackers(self, terms):
    self.loss_tracker.update_state(terms["loss"])
    self.mse_tracker.update_state(tf.reduce_mean(terms["mse"], axis=1))
    self.kl_tracker.update_state(tf.reduce_mean(terms["kl"], axis=1))
    return {m.name: m.result() for m in self.metrics}

  def step_inputs(self, data):
    return self._frames(data)

  def call(self, frames, training=False):
    frames = tf.cast(frames, tf.float32)
    return self.compute_terms(frames, training=training, use_mean=not training)["prediction"]

  # ---------------------------------------------------------------- generation
  def predict(self, context, num_future, num_samples=1, seed=None, batchnorm="moving"):
    """Samples futures after a context (overrides `keras.Model.predict`).

    Context frames drive the posterior (z_t ~ q), prior and predictor LSTMs as in
    the official generate script; then each future frame is z_t ~ p(z_t) (learned
    or N(0, I)), g_t = LSTM(Enc(x_{t-1}), z_t), x_t = Dec(g_t, skips) fed back.
    Runs a `tf.function` (traced once for any lengths) with stateless noise: the
    same seed gives the same samples.

    Args:
      context: [B, n_ctx, H, W, C] observed frames (n_ctx >= `min_context`).
      num_future: frames to generate (>= 1).
      num_samples: samples per sequence.
      seed: int, int32[2] or None (random).
      batchnorm: "moving" (BatchNorm moving statistics) or "batch" (the authors'
        generate script: each frame batch of each sample normalized with its own
        statistics over the B sequences; moving averages untouched).

    Returns:
      float32 [B, num_samples, num_future, H, W, C] in [0, 1].
    """
    if batchnorm not in GENERATION_BATCHNORM:
      raise ValueError(f"batchnorm must be one of {GENERATION_BATCHNORM}, got {batchnorm!r}")
    context = tf.cast(tf.convert_to_tensor(context), tf.float32)
    check_frames(context, self.image_size, self.channels, self.min_context, what="context")
    if int(num_future) < 1 or int(num_samples) < 1:
      raise ValueError(f"num_future ({num_future}) and num_samples ({num_samples}) must be >= 1")
    rollout = self._rollout if batchnorm == "moving" else self._rollout_batch_statistics
    return rollout(context, tf.constant(int(num_future), tf.int32),
                   tf.constant(int(num_samples), tf.int32), as_seed(seed))

  def generate_with_noise(self, context, posterior_noise, prior_noise, batchnorm="moving"):
    """One future per sequence from given noise (the seam for reference checks).

    Args:
      context: [B, n_ctx, H, W, C].
      posterior_noise: [B, n_ctx - 1, z_dim] noise of the context steps' z ~ q.
      prior_noise: [B, F, z_dim] noise of the F generated steps' z ~ p.
      batchnorm: as `predict`.

    Returns:
      float32 [B, F, H, W, C].
    """
    if batchnorm not in GENERATION_BATCHNORM:
      raise ValueError(f"batchnorm must be one of {GENERATION_BATCHNORM}, got {batchnorm!r}")
    context = tf.cast(tf.convert_to_tensor(context), tf.float32)
    check_frames(context, self.image_size, self.channels, self.min_context, what="context")
    prior_noise = tf.transpose(tf.cast(prior_noise, tf.float32), [1, 0, 2])
    out = self._generate(context, 1, tf.cast(posterior_noise, tf.float32), prior_noise,
                         batch_statistics=batchnorm == "batch")
    return out[:, 0]

  @tf.function(input_signature=PREDICT_SIGNATURE)
  def _rollout(self, context, num_future, num_samples, seed):
    return self._sample(context, num_future, num_samples, seed, batch_statistics=False)

  @tf.function(input_signature=PREDICT_SIGNATURE)
  def _rollout_batch_statistics(self, context, num_future, num_samples, seed):
    return self._sample(context, num_future, num_samples, seed, batch_statistics=True)

  def _sample(self, context, num_future, num_samples, seed, batch_statistics):
    n = tf.shape(context)[0] * num_samples
    seeds = tf.random.experimental.stateless_split(seed, 2)
    posterior_noise = tf.random.stateless_normal(
        tf.stack([n, tf.shape(context)[1] - 1, self.z_dim]), seeds[0])
    prior_noise = tf.random.stateless_normal(tf.stack([num_future, n, self.z_dim]), seeds[1])
    return self._generate(context, num_samples, posterior_noise, prior_noise,
                          batch_statistics)

  def _generate(self, context, num_samples, posterior_noise, prior_noise, batch_statistics):
    """The rollout. Sequence b's sample s is row b * S + s of the N = B * S rows.

    posterior_noise [N, n_ctx - 1, z], prior_noise [F, N, z]; returns
    [B, S, F, H, W, C]. With batch statistics, BatchNorm groups are the frames of
    one step of one sample (row index mod S, and time).
    """
    batch, n_ctx = tf.shape(context)[0], tf.shape(context)[1]
    num_future = tf.shape(prior_noise)[0]
    ctx = tf.repeat(context, num_samples, axis=0)  # [N, n_ctx, H, W, C], N = B * S
    n = tf.shape(ctx)[0]
    ctx = tf.ensure_shape(ctx, [None, None, self.image_size, self.image_size, self.channels])
    if batch_statistics:
      per_frame = self.batchnorm_statistics == "per_frame"
      ctx_bn = dict(batch_statistics=True, groups=num_samples * n_ctx if per_frame else None)
      step_bn = dict(batch_statistics=True, groups=num_samples if per_frame else None)
    else:
      ctx_bn, step_bn = {}, {}
    h, skips = self._encode(flatten_time(ctx), training=False, **ctx_bn)
    h = unflatten_time(h, n)
    skips = [unflatten_time(s, n) for s in skips]
    # Context phase: n_ctx - 1 steps with posterior samples.
    post_feat, _ = self.posterior_rnn(h[:, 1:])
    q_loc, q_scale = self.posterior_head(post_feat)
    z = q_loc + q_scale * posterior_noise
    _, pred_states = self.predictor(tf.concat([h[:, :-1], z], axis=-1))
    prior_states = self.prior_rnn(h[:, :-1])[1] if self.learned_prior else []
    ctx_skips = [s[:, n_ctx - 2] for s in skips] if not self.last_frame_skip else []

    def body(t, x_in, outputs, pred_states, prior_states):
      h_in, skips_in = self._encode(x_in, training=False, **step_bn)
      if self.learned_prior:
        feat, prior_states = self.prior_rnn.step(h_in, prior_states)
        p_loc, p_scale = self.prior_head(feat)
        z_t = p_loc + p_scale * prior_noise[t]
      else:
        z_t = prior_noise[t]
      g, pred_states = self.predictor.step(tf.concat([h_in, z_t], axis=-1), pred_states)
      dec_skips = skips_in if self.last_frame_skip else ctx_skips
      x = self._decode(g, dec_skips if self.skip else None, training=False, **step_bn)
      return t + 1, x, outputs.write(t, x), pred_states, prior_states

    outputs = tf.TensorArray(tf.float32, size=num_future)
    loop = tf.while_loop(lambda t, *_: t < num_future, body,
                         (tf.constant(0), ctx[:, -1], outputs, pred_states, prior_states))
    return rollout_output(loop[2], batch, num_samples)

  def get_config(self):
    config = super().get_config()
    config.update({
        "prior": self.prior_type, "image_size": self.image_size, "channels": self.channels,
        "g_dim": self.g_dim, "z_dim": self.z_dim, "rnn_size": self.rnn_size,
        "predictor_layers": self.predictor_layers, "posterior_layers": self.posterior_layers,
        "prior_layers": self.prior_layers, "filters": self.filters, "beta": self.beta,
        "n_past": self.n_past, "n_future": self.n_future, "skip": self.skip,
        "last_frame_skip": self.last_frame_skip, "seed": self.seed,
        "batchnorm_epsilon": self.batchnorm_epsilon,
        "batchnorm_momentum": self.batchnorm_momentum,
        "unbiased_moving_variance": self.unbiased_moving_variance,
        "batchnorm_statistics": self.batchnorm_statistics,
        "initialization": self.initialization, "clip_logvar": self.clip_logvar})
    return config
