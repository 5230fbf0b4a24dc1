"""A video MVAE ("Method I"): the previous and current frame as two modalities per time step.

At step t = 1 .. T-1 (0-based frames) the previous frame a = x_{t-1} and the
current frame b = x_t are two modalities of one latent z_t:

    h_s = Enc(x_s)                                    DCGAN frame code [B, g_dim]
    expert a: (mu_a, sigma_a)_t = Head_a(LSTM_a(h_{0:t-1}))   q(z_t | a)
    expert b: (mu_b, sigma_b)_t = Head_b(LSTM_b(h_{1:t}))     q(z_t | b)
    prior:    p(z_t) = N(0, I)                              (prior="fixed")
              p(z_t | x_{0:t-1}) = N(Head_p(LSTM_p(h_{0:t-1})))  (prior="learned")
    q(z_t | S) ∝ p(z_t) prod_{i in S} q(z_t | i)         `tfmvae.layers.product_of_experts`
                                                      (the prior is the PoE's prior expert)
    x'_{t-1} = Dec_a(z_t, skips),  x'_t = Dec_b(z_t, skips)

Skips (skip=True) come from one frame's encoder feature maps, chosen by
`skip_source`:
- "context" (default): SVG-style content skips from the last observed frame,
  s(t) = min(t - 1, n_past - 1): the previous frame inside the conditioning window
  and the last context frame afterwards (at generation, the last given frame).
- "previous": always the previous frame, s(t) = t - 1 (SVG's `last_frame_skip`);
  at generation, the previous *generated* frame, so the decoder sees where the
  digits are now rather than where they were at the end of the context.

Objective (per example, summed over time, averaged over the global batch with
`tf.nn.compute_average_loss` semantics):

    L = sum_t sum_{S in {ab, a, b}} [ sum_{i in S} -log p(x_i | z_S) + beta KL(q(z_t|S) || p(z_t)) ]

with z_S ~ q(z_t | S) (one reparameterized sample per term) and the KL taken
against the same (fixed or learned) prior that entered the product. This is the
MVAE sub-sampled ELBO for M = 2 (joint + both unimodal terms). Pixel likelihood:
Bernoulli on the decoder's logits by default (Moving MNIST pixels are nearly
binary; the target in [0, 1] is used as a soft label: -sum x log p + (1-x) log(1-p)),
or a fixed-variance Gaussian N(x | sigmoid(logits), gaussian_scale**2). Sums are
over pixels, so beta = 1 is the standard ELBO.

`cross_reconstruction=True` (an option beyond the two-modality ELBO) adds
-log p(x_t | z_a), z_a ~ q(z_t | a), to the ELBO(a) term: the decoder path used at
generation time. Without it nothing trains q(z_t | x_{<t}) to predict x_t except
through the shared latent space.

Generation (`predict`): the context frames run LSTM_a (and LSTM_p); then at each
future step only modality a is present (mask [1, 0]):
z_t ~ q(z_t | a) = PoE(prior, expert a), x'_t = sigmoid(Dec_b(z_t)) (the likelihood
mean), which is encoded and fed back as the next x_{t-1}. Stateless noise: the
same seed gives the same samples; the loop is a `tf.while_loop` in a `tf.function`.

Extension point for Method II (VAE-GAN with frame discriminators): `compute_terms`
returns every reconstruction and term, `decode` maps any z to frames, and
`variable_groups` splits the weights into encoder and decoder groups, so a
subclass only adds discriminators, replaces the pixel term, and writes its
train_step.
"""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfmvae.layers import GaussianHead
from tfmvae.layers import product_of_experts
from tfmvae.models.svg import PREDICT_SIGNATURE
from tfmvae.models.svg import as_seed
from tfmvae.models.svg import check_frames
from tfmvae.models.svg import flatten_time
from tfmvae.models.svg import frames_from_data
from tfmvae.models.svg import mvn
from tfmvae.models.svg import rollout_output
from tfmvae.models.svg import unflatten_time
from tfmvae.models.steps import SingleOptimizerSteps
from tfmvae.models.tracking import CheckpointAllVariables
from tfmvae.networks.frame import FrameDecoder
from tfmvae.networks.frame import FrameEncoder
from tfmvae.networks.frame import StackedLSTM

tfd = tfp.distributions

# Subsets of the two modalities (a = x_{t-1}, b = x_t): name -> PoE mask.
SUBSETS = (("ab", (1.0, 1.0)), ("a", (1.0, 0.0)), ("b", (0.0, 1.0)))


@keras.saving.register_keras_serializable(package="tfmvae")
class VideoMVAE(SingleOptimizerSteps, CheckpointAllVariables, keras.Model):
  """Video MVAE (Method I): previous and current frame as two PoE modalities.

  Args:
    prior: "fixed" (N(0, I) prior expert) or "learned" (LSTM over x_{0:t-1}).
    image_size: frame side (multiple of 16).
    channels: frame channels.
    g_dim: frame code size.
    z_dim: latent size per step.
    rnn_size, rnn_layers: LSTM width/depth of each expert and of the prior.
    filters: DCGAN width.
    beta: KL weight.
    likelihood: "bernoulli" or "gaussian" (fixed scale `gaussian_scale`).
    gaussian_scale: pixel standard deviation of the Gaussian likelihood.
    n_past: conditioning frames (sets the training skip rule).
    n_future: predicted frames in training (documentation; the data decides T).
    skip: decoder skip connections (content skips).
    skip_source: "context" (last observed frame) or "previous" (previous frame,
      generated ones included); see the module docstring.
    shared_encoder: one frame encoder for both modalities (else one each).
    cross_reconstruction: add -log p(x_t | z ~ q(z | a)) to ELBO(a).
    eps: variance floor of the product of experts.
    seed: seed of the training-time reparameterization noise.

  Call arguments:
    frames: [B, T, H, W, C]; returns x'_t [B, T-1, H, W, C] decoded (likelihood
      mean) from the joint posterior mean q(z_t | a, b).

  Example:
    >>> model = VideoMVAE(prior="learned", image_size=64)
    >>> model.compile()  # Adam(1e-3)
    >>> model.fit(frames_dataset, epochs=...)
    >>> samples = model.predict(frames[:, :5], num_future=10, num_samples=20, seed=0)

  Reference:
    Wu & Goodman, NeurIPS 2018 (arXiv:1802.05335); Denton & Fergus, ICML 2018.
  """

  def __init__(self, prior="fixed", image_size=64, channels=1, g_dim=128, z_dim=32,
               rnn_size=256, rnn_layers=1, filters=64, beta=1.0, likelihood="bernoulli",
               gaussian_scale=0.1, n_past=5, n_future=10, skip=True, shared_encoder=True,
               cross_reconstruction=False, eps=1e-8, seed=None, skip_source="context",
               **kwargs):
    super().__init__(**kwargs)
    if prior not in ("fixed", "learned"):
      raise ValueError(f"prior must be 'fixed' or 'learned', got {prior!r}")
    if likelihood not in ("bernoulli", "gaussian"):
      raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
    if n_past < 1:
      raise ValueError(f"n_past must be >= 1, got {n_past}")
    if skip_source not in ("context", "previous"):
      raise ValueError(f"skip_source must be 'context' or 'previous', got {skip_source!r}")
    self.prior_type = prior
    self.image_size = image_size
    self.channels = channels
    self.g_dim = g_dim
    self.z_dim = z_dim
    self.rnn_size = rnn_size
    self.rnn_layers = rnn_layers
    self.filters = filters
    self.beta = float(beta)
    self.likelihood = likelihood
    self.gaussian_scale = float(gaussian_scale)
    self.n_past = n_past
    self.n_future = n_future
    self.skip = skip
    self.skip_source = skip_source
    self.shared_encoder = shared_encoder
    self.cross_reconstruction = cross_reconstruction
    self.eps = eps
    self.seed = seed
    frame_args = dict(image_size=image_size, channels=channels, filters=filters)
    self.encoder_a = FrameEncoder(g_dim, name="encoder_a", **frame_args)
    if not shared_encoder:
      self.encoder_b = FrameEncoder(g_dim, name="encoder_b", **frame_args)
    self.rnn_a = StackedLSTM(rnn_size, rnn_layers, name="rnn_a")
    self.rnn_b = StackedLSTM(rnn_size, rnn_layers, name="rnn_b")
    self.head_a = GaussianHead(z_dim, name="expert_a")
    self.head_b = GaussianHead(z_dim, name="expert_b")
    if prior == "learned":
      self.prior_rnn = StackedLSTM(rnn_size, rnn_layers, name="prior_rnn")
      self.prior_head = GaussianHead(z_dim, name="prior_head")
    self.latent_a = keras.layers.Dense(g_dim, activation="tanh", name="latent_a")
    self.latent_b = keras.layers.Dense(g_dim, activation="tanh", name="latent_b")
    self.decoder_a = FrameDecoder(skip=skip, output_activation=None, name="decoder_a",
                                  **frame_args)
    self.decoder_b = FrameDecoder(skip=skip, output_activation=None, name="decoder_b",
                                  **frame_args)
    self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
    # Steps run (skipped mixed-precision steps included), the binaries' step count.
    self.train_steps = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                       trainable=False, name="train_steps",
                                       aggregation="only_first_replica")
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.nll_tracker = keras.metrics.Mean(name="nll")
    self.kl_tracker = keras.metrics.Mean(name="kl")
    self.build()

  @property
  def learned_prior(self):
    return self.prior_type == "learned"

  min_context = 1

  def build(self, input_shape=None):
    """Creates every weight from the constructor's sizes (no data needed)."""
    if self.built:
      return
    frame = (None, self.image_size, self.image_size, self.channels)
    self.encoder_a.build(frame)
    if not self.shared_encoder:
      self.encoder_b.build(frame)
    for rnn, head in self._recurrent_pairs():
      rnn.build((None, None, self.g_dim))
      head.build((None, self.rnn_size))
    for dense, dec in ((self.latent_a, self.decoder_a), (self.latent_b, self.decoder_b)):
      dense.build((None, self.z_dim))
      dec.build((None, self.g_dim))
    self.built = True

  def _recurrent_pairs(self):
    pairs = [(self.rnn_a, self.head_a), (self.rnn_b, self.head_b)]
    if self.learned_prior:
      pairs.append((self.prior_rnn, self.prior_head))
    return pairs

  def compile(self, optimizer=None, **kwargs):
    """Keras compile; the default optimizer is Adam(1e-3) (MVAE's MNIST setting)."""
    if optimizer is None:
      optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    super().compile(optimizer=optimizer, **kwargs)

  def compile_from_config(self, config):
    """Restores the compiled optimizer on `.keras` reload (custom `compile`)."""
    config = keras.saving.deserialize_keras_object(config)
    self.compile(**config)
    if self.built:
      self.optimizer.build(self.trainable_variables)

  def variable_groups(self):
    """{"encoder": inference-side weights, "decoder": generator-side weights}.

    Encoder: frame encoders, expert/prior LSTMs and heads. Decoder: latent
    projections and frame decoders (what a VAE-GAN's decoder optimizer updates).
    """
    dec_layers = [self.latent_a, self.latent_b, self.decoder_a, self.decoder_b]
    dec_ids = {id(v) for layer in dec_layers for v in layer.trainable_variables}
    enc = [v for v in self.trainable_variables if id(v) not in dec_ids]
    dec = [v for layer in dec_layers for v in layer.trainable_variables]
    return {"encoder": enc, "decoder": dec}

  # ---------------------------------------------------------------- pieces
  def _encode_a(self, x, training):
    """Modality a's frame codes, float32 (the latents' dtype under a mixed policy), and skips."""
    h, skips = self.encoder_a(x, training=training)
    return tf.cast(h, tf.float32), skips

  def encode_frames(self, frames, training=False):
    """Frame codes and skips: (h_a [B, T, g], h_b [B, T, g], skips list [B, T, ...]).

    Codes are float32 whatever the policy (the LSTMs cast their inputs back).
    """
    batch = tf.shape(frames)[0]
    flat = flatten_time(frames)
    h_a, skips = self._encode_a(flat, training=training)
    h_b = (h_a if self.shared_encoder
           else tf.cast(self.encoder_b(flat, training=training)[0], tf.float32))
    return (unflatten_time(h_a, batch), unflatten_time(h_b, batch),
            [unflatten_time(s, batch) for s in skips])

  def prior_params(self, h_prev):
    """p(z_t) (loc, scale) [B, T', z] from codes of x_{0:t-1} [B, T', g]."""
    if self.learned_prior:
      feat, _ = self.prior_rnn(h_prev)
      return self.prior_head(feat)
    zeros = tf.zeros(tf.concat([tf.shape(h_prev)[:-1], [self.z_dim]], 0))
    return zeros, tf.ones_like(zeros)

  def decode(self, z, skips, modality, training=False):
    """Decoder logits [N, H, W, C] of modality "a" or "b" for z [N, z_dim].

    skips: list of [N, ...] maps from `FrameEncoder` (None when skip=False).
    The logits are float32 (float16 inside the decoder under a mixed policy).
    """
    dense, dec = ((self.latent_a, self.decoder_a) if modality == "a"
                  else (self.latent_b, self.decoder_b))
    return tf.cast(dec(dense(z), skips if self.skip else None, training=training), tf.float32)

  def likelihood_mean(self, logits):
    """Pixel likelihood mean: sigmoid(logits) (Bernoulli p, or Gaussian mean)."""
    return tf.sigmoid(logits)

  def negative_log_likelihood(self, x, logits):
    """-log p(x | logits) summed over pixels: [N, H, W, C] -> [N]."""
    if self.likelihood == "bernoulli":
      dist = tfd.Bernoulli(logits=logits, dtype=tf.float32)
    else:
      dist = tfd.Normal(tf.sigmoid(logits), self.gaussian_scale)
    return -tfd.Independent(dist, reinterpreted_batch_ndims=3).log_prob(x)

  def _skip_index(self, num_targets):
    """Frame index s(t) of the decoder skips for targets t = 1..num_targets: [T-1]."""
    t = tf.range(1, num_targets + 1)
    if self.skip_source == "previous":
      return t - 1
    return tf.minimum(t - 1, self.n_past - 1)

  def compute_terms(self, frames, training=False, use_mean=False):
    """Every reconstruction and ELBO term of a sequence (teacher forced).

    Args:
      frames: [B, T, H, W, C], T >= 2.
      training: BatchNorm mode.
      use_mean: decode the posterior means instead of samples.

    Returns:
      dict with (N = B * (T-1) flattened steps where noted):
        "targets": {"a": x_{0:T-2}, "b": x_{1:T-1}} each [B, T-1, H, W, C];
        "experts": {"a": (loc, scale), "b": (loc, scale)} [B, T-1, z];
        "prior": (loc, scale) [B, T-1, z];
        "posterior": {S: (loc, scale) [B, T-1, z]} for S in "ab", "a", "b";
        "z": {S: [B, T-1, z]};
        "logits" / "recon": {S: {i: [B, T-1, H, W, C]}}, decoder logits / means for
          modality i decoded from z_S (i in S; plus "b" for S = "a" with
          cross_reconstruction);
        "nll": {S: [B]} sum over time, pixels and the subset's modalities;
        "kl": {S: [B]} KL(q(z_t | S) || p(z_t)) summed over time;
        "kl_per_step": {S: [B, T-1]};
        "skips": decoder skips, list of [N, ...] (for decoding other z, e.g. a
          VAE-GAN's prior samples);
        "loss": [B] = sum_S nll_S + beta kl_S.
    """
    batch, steps = tf.shape(frames)[0], tf.shape(frames)[1]
    n = batch * (steps - 1)
    h_a, h_b, skips = self.encode_frames(frames, training=training)
    h_prev, h_cur = h_a[:, :-1], h_b[:, 1:]
    loc_a, scale_a = self.head_a(self.rnn_a(h_prev)[0])
    loc_b, scale_b = self.head_b(self.rnn_b(h_cur)[0])
    p_loc, p_scale = self.prior_params(h_prev)
    flat = lambda x: tf.reshape(x, [n, self.z_dim])  # noqa: E731
    num_subsets = len(SUBSETS)
    locs = tf.tile(tf.stack([flat(loc_a), flat(loc_b)], axis=1), [num_subsets, 1, 1])
    scales = tf.tile(tf.stack([flat(scale_a), flat(scale_b)], axis=1), [num_subsets, 1, 1])
    masks = tf.repeat(tf.constant([m for _, m in SUBSETS], tf.float32), n, axis=0)
    prior = (tf.tile(flat(p_loc), [num_subsets, 1]), tf.tile(flat(p_scale), [num_subsets, 1]))
    q_loc, q_scale = product_of_experts(locs, scales, mask=masks, prior=prior, eps=self.eps)
    if use_mean:
      z = q_loc
    else:
      z = q_loc + q_scale * keras.random.normal(tf.shape(q_loc), seed=self.seed_generator)
    kl = tfd.kl_divergence(mvn(q_loc, q_scale), mvn(*prior))  # [3N]
    names = [name for name, _ in SUBSETS]
    z_s = dict(zip(names, tf.split(z, num_subsets)))
    kl_s = dict(zip(names, tf.split(kl, num_subsets)))
    post_s = dict(zip(names, zip(tf.split(q_loc, num_subsets), tf.split(q_scale, num_subsets))))

    index = self._skip_index(steps - 1)
    dec_skips = ([flatten_time(tf.gather(s, index, axis=1)) for s in skips]
                 if self.skip else None)
    targets = {"a": flatten_time(frames[:, :-1]), "b": flatten_time(frames[:, 1:])}
    plan = {"a": ["ab", "a"], "b": ["ab", "b"] + (["a"] if self.cross_reconstruction else [])}
    logits = {name: {} for name in names}
    nll = {name: tf.zeros([n]) for name in names}
    for modality, subset_names in plan.items():
      k = len(subset_names)
      z_in = tf.concat([z_s[s] for s in subset_names], axis=0)
      sk = [tf.tile(s, tf.concat([[k], tf.ones([tf.rank(s) - 1], tf.int32)], 0))
            for s in dec_skips] if self.skip else None
      out = self.decode(z_in, sk, modality, training=training)
      target = tf.tile(targets[modality], [k, 1, 1, 1])
      nll_all = tf.split(self.negative_log_likelihood(target, out), k)
      for s, o, v in zip(subset_names, tf.split(out, k), nll_all):
        logits[s][modality] = o
        nll[s] = nll[s] + v

    per_batch = lambda x: tf.reshape(x, tf.concat([[batch, steps - 1], tf.shape(x)[1:]], 0))  # noqa: E731
    terms = {
        "targets": {k: per_batch(v) for k, v in targets.items()},
        "experts": {"a": (loc_a, scale_a), "b": (loc_b, scale_b)},
        "prior": (p_loc, p_scale),
        "posterior": {s: (per_batch(l), per_batch(sc)) for s, (l, sc) in post_s.items()},
        "z": {s: per_batch(v) for s, v in z_s.items()},
        "logits": {s: {m: per_batch(v) for m, v in d.items()} for s, d in logits.items()},
        "recon": {s: {m: self.likelihood_mean(per_batch(v)) for m, v in d.items()}
                  for s, d in logits.items()},
        "kl_per_step": {s: per_batch(v) for s, v in kl_s.items()},
        "nll": {s: tf.reduce_sum(per_batch(v), axis=1) for s, v in nll.items()},
        "kl": {s: tf.reduce_sum(per_batch(v), axis=1) for s, v in kl_s.items()},
        "skips": dec_skips,
    }
    terms["loss"] = tf.add_n([terms["nll"][s] + self.beta * terms["kl"][s] for s in names])
    return terms

  # ---------------------------------------------------------------- training
  @property
  def metrics(self):
    return [self.loss_tracker, self.nll_tracker, self.kl_tracker]

  def _frames(self, data):
    frames = frames_from_data(data)
    check_frames(frames, self.image_size, self.channels, 2)
    return frames

  def _update_trackers(self, terms):
    self.loss_tracker.update_state(terms["loss"])
    self.nll_tracker.update_state(tf.add_n(list(terms["nll"].values())))
    self.kl_tracker.update_state(tf.add_n(list(terms["kl"].values())))
    return {m.name: m.result() for m in self.metrics}

  def step_inputs(self, data):
    return self._frames(data)

  def call(self, frames, training=False):
    frames = tf.cast(frames, tf.float32)
    terms = self.compute_terms(frames, training=training, use_mean=not training)
    return terms["recon"]["ab"]["b"]

  # ---------------------------------------------------------------- generation
  def predict(self, context, num_future, num_samples=1, seed=None):
    """Samples futures after a context (overrides `keras.Model.predict`).

    Args:
      context: [B, n_ctx, H, W, C] observed frames (n_ctx >= 1).
      num_future: frames to generate (>= 1).
      num_samples: samples per sequence.
      seed: int, int32[2] or None (random).

    Returns:
      float32 [B, num_samples, num_future, H, W, C] in [0, 1] (likelihood means).
    """
    context = tf.cast(tf.convert_to_tensor(context), tf.float32)
    check_frames(context, self.image_size, self.channels, self.min_context, what="context")
    if int(num_future) < 1 or int(num_samples) < 1:
      raise ValueError(f"num_future ({num_future}) and num_samples ({num_samples}) must be >= 1")
    return self._rollout(context, tf.constant(int(num_future), tf.int32),
                         tf.constant(int(num_samples), tf.int32), as_seed(seed))

  @tf.function(input_signature=PREDICT_SIGNATURE)
  def _rollout(self, context, num_future, num_samples, seed):
    batch, n_ctx = tf.shape(context)[0], tf.shape(context)[1]
    ctx = tf.repeat(context, num_samples, axis=0)
    ctx = tf.ensure_shape(ctx, [None, None, self.image_size, self.image_size, self.channels])
    n = tf.shape(ctx)[0]
    h, skips = self._encode_a(flatten_time(ctx), training=False)
    h = unflatten_time(h, n)
    _, a_states = self.rnn_a(h[:, :-1])
    p_states = self.prior_rnn(h[:, :-1])[1] if self.learned_prior else []
    ctx_skips = [unflatten_time(s, n)[:, n_ctx - 1] for s in skips] if self.skip else None
    noise = tf.random.stateless_normal(tf.stack([num_future, n, self.z_dim]), seed)
    mask = tf.tile(tf.constant([[1.0, 0.0]]), tf.stack([n, 1]))

    def body(t, x_in, outputs, a_states, p_states):
      h_in, skips_in = self._encode_a(x_in, training=False)
      feat, a_states = self.rnn_a.step(h_in, a_states)
      loc_a, scale_a = self.head_a(feat)
      if self.learned_prior:
        feat_p, p_states = self.prior_rnn.step(h_in, p_states)
        prior = self.prior_head(feat_p)
      else:
        prior = None  # N(0, I)
      locs = tf.stack([loc_a, tf.zeros_like(loc_a)], axis=1)
      scales = tf.stack([scale_a, tf.ones_like(scale_a)], axis=1)
      q_loc, q_scale = product_of_experts(locs, scales, mask=mask, prior=prior, eps=self.eps)
      z = q_loc + q_scale * noise[t]
      dec_skips = skips_in if self.skip_source == "previous" else ctx_skips
      x = self.likelihood_mean(self.decode(z, dec_skips, "b", training=False))
      return t + 1, x, outputs.write(t, x), a_states, p_states

    outputs = tf.TensorArray(tf.float32, size=num_future)
    loop = tf.while_loop(lambda t, *_: t < num_future, body,
                         (tf.constant(0), ctx[:, -1], outputs, a_states, p_states))
    return rollout_output(loop[2], batch, num_samples)

  def get_config(self):
    config = super().get_config()
    config.update({
        "prior": self.prior_type, "image_size": self.image_size, "channels": self.channels,
        "g_dim": self.g_dim, "z_dim": self.z_dim, "rnn_size": self.rnn_size,
        "rnn_layers": self.rnn_layers, "filters": self.filters, "beta": self.beta,
        "likelihood": self.likelihood, "gaussian_scale": self.gaussian_scale,
        "n_past": self.n_past, "n_future": self.n_future, "skip": self.skip,
        "skip_source": self.skip_source,
        "shared_encoder": self.shared_encoder,
        "cross_reconstruction": self.cross_reconstruction, "eps": self.eps, "seed": self.seed})
    return config
