"""The multimodal VAE with a product-of-experts posterior (Wu & Goodman, 2018).

Generative model: p(x_1..x_M, z) = p(z) prod_i p(x_i | z), p(z) = N(0, I).
Inference: q(z | X) ∝ p(z) prod_{i in X} q(z | x_i), Gaussian experts fused by
`tfmvae.layers.ProductOfExperts` (exactly one prior expert).
Training: the sub-sampled objective of `tfmvae.objectives` (joint + unimodal + k
random subsets), per-example presence masks, KL weight `kl_weight` (warmed up by
`tfmvae.callbacks.KLWarmup`).

Shapes: inputs are a dict {name: [B, *shape]} plus optional "mask" [B, M] float32
(columns in the order of `modalities`); a modality absent from the dict is missing
for every example. z is [B, latent_dim].
"""
import keras
import tensorflow as tf

from tfmvae import objectives
from tfmvae.layers import GaussianHead
from tfmvae.layers import ProductOfExperts
from tfmvae.modalities import as_modality
from tfmvae.models.steps import SingleOptimizerSteps
from tfmvae.models.tracking import CheckpointAllVariables

SUBSET_LIKELIHOODS = ("own", "all")


@keras.saving.register_keras_serializable(package="tfmvae")
class MVAE(SingleOptimizerSteps, CheckpointAllVariables, keras.Model):
  """Multimodal VAE (MVAE) trained with the sub-sampled ELBO under `model.fit`.

  Args:
    modalities: list of `tfmvae.modalities.Modality` (or their config dicts).
    latent_dim: size of z (MVAE MNIST: 64; CelebA: 100).
    num_subsets: k, random subsets per batch beyond joint + unimodal (0 for M=2).
    beta: final KL weight (the warm-up callback ramps `kl_weight` up to it).
    eps: variance floor of the product of experts.
    check_numerics: fail with the modality's name on NaN/Inf inputs.
    seed: seed of the model's sampling (reparameterization, random subsets).
    subset_likelihood: which modalities each subset's z is scored on.
      "own" (the paper): ELBO(X_S) = E_{q(z|X_S)}[sum_{i in S} lambda_i log p(x_i|z)]
      - beta KL, a bound on log p(X_S). "all": every present modality,
      E_{q(z|X_S)}[sum_{i present} lambda_i log p(x_i|z)] - beta KL, a bound on
      log p(X) with q(z|X_S) as the variational posterior (the subset bounds of
      MoPoE-VAE, Sutter et al. 2021). "all" trains p(y|z) on z ~ q(z|image) and
      p(image|z) on z ~ q(z|y): it stops the experts from splitting the latent
      space into modality-private dimensions, which makes cross-modal generation
      fail (see BENCHMARKS.md, MVAE on MNIST).

  Call arguments:
    inputs: dict of modalities (+ "mask"); returns reconstructions from the
      posterior mean, a dict {name: [B, *shape]} of likelihood means.

  Example:
    >>> from tfmvae import modalities as mods
    >>> model = MVAE([mods.image(shape=(28, 28, 1)), mods.label(10)], latent_dim=64)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(tfmvae.data.mnist_pairs("train").batch(100), epochs=1)

  Reference:
    Wu & Goodman, "Multimodal Generative Models for Scalable Weakly-Supervised
    Learning", NeurIPS 2018, arXiv:1802.05335.
  """

  def __init__(self, modalities, latent_dim=64, num_subsets=0, beta=1.0, eps=1e-8,
               check_numerics=True, seed=None, subset_likelihood="own", **kwargs):
    super().__init__(**kwargs)
    self.modalities = [as_modality(m) for m in modalities]
    names = [m.name for m in self.modalities]
    if not names:
      raise ValueError("an MVAE needs at least one modality")
    if len(set(names)) != len(names) or "mask" in names:
      raise ValueError(f"modality names must be unique and not 'mask'; got {names}")
    self.modality_names = names
    self.latent_dim = int(latent_dim)
    self.num_subsets = int(num_subsets)
    self.beta = float(beta)
    self.eps = eps
    self.check_numerics = check_numerics
    self.seed = seed
    if subset_likelihood not in SUBSET_LIKELIHOODS:
      raise ValueError(f"subset_likelihood must be one of {SUBSET_LIKELIHOODS}; "
                       f"got {subset_likelihood!r}")
    self.subset_likelihood = subset_likelihood
    self.encoders = [m.make_encoder() for m in self.modalities]
    self.experts = [GaussianHead(self.latent_dim, name=f"{m.name}_expert")
                    for m in self.modalities]
    self.decoders = [m.make_decoder() for m in self.modalities]
    self.poe = ProductOfExperts(eps=eps, name="product_of_experts")
    self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
    self.kl_weight = self.add_weight(shape=(), initializer=keras.initializers.Constant(beta),
                                     trainable=False, name="kl_weight")
    self.train_steps = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                       trainable=False, name="train_steps",
                                       aggregation="only_first_replica")
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.kl_tracker = keras.metrics.Mean(name="kl")
    self.elbo_tracker = keras.metrics.Mean(name="elbo")
    self.nll_trackers = [keras.metrics.Mean(name=f"nll_{n}") for n in names]
    self.build()

  # ---------------------------------------------------------------- building
  def build(self, input_shape=None):
    """Creates every weight with one forward pass of zeros (shapes come from the
    modality specs, so a reloaded model builds without data)."""
    if self.built:
      return
    dummy = {m.name: tf.zeros((1,) + m.shape) for m in self.modalities}
    loc, _ = self._experts(dummy, training=False)
    self._decode_all(loc[:, 0], training=False)
    self.built = True

  # ---------------------------------------------------------------- inputs
  def parse_inputs(self, data):
    """Validates a batch; returns ({name: float32 [B, *shape]}, mask [B, M]).

    Missing dict keys become zeros with mask 0. Values where the mask is 0 are
    replaced by zeros, so a missing modality may hold anything (even NaN).

    Raises:
      ValueError: no known modality, a wrong per-example shape or a wrong mask
        shape, each naming the modality.
    """
    if isinstance(data, (tuple, list)):
      data = data[0]
    if not isinstance(data, dict):
      if len(self.modalities) == 1:
        data = {self.modalities[0].name: data}
      else:
        raise ValueError(f"expected a dict with modalities {self.modality_names} "
                         f"(+ optional 'mask'); got {type(data).__name__}")
    unknown = sorted(set(data) - set(self.modality_names) - {"mask"})
    if unknown:
      raise ValueError(f"unknown modalities {unknown}; this model has {self.modality_names}")
    present = [n for n in self.modality_names if n in data]
    if not present:
      raise ValueError(f"all modalities are missing: the batch has none of "
                       f"{self.modality_names}")
    batch = tf.shape(tf.convert_to_tensor(data[present[0]]))[0]
    xs, columns = {}, []
    for m in self.modalities:
      if m.name in data:
        x = tf.cast(tf.convert_to_tensor(data[m.name]), tf.float32)
        if x.shape.rank is not None and tuple(x.shape[1:]) != m.shape:
          raise ValueError(f"modality '{m.name}': expected per-example shape {m.shape}, "
                           f"got {tuple(x.shape[1:])} (batch shape {tuple(x.shape)})")
        columns.append(tf.ones([batch]))
      else:
        x = tf.zeros(tf.concat([[batch], m.shape], 0))
        columns.append(tf.zeros([batch]))
      xs[m.name] = x
    mask = tf.stack(columns, axis=1)
    if "mask" in data and data["mask"] is not None:
      given = tf.cast(tf.convert_to_tensor(data["mask"]), tf.float32)
      num = len(self.modalities)
      if given.shape.rank is not None and (given.shape.rank != 2 or given.shape[-1] != num):
        raise ValueError(f"mask must be [batch, {num}] (columns {self.modality_names}); "
                         f"got shape {tuple(given.shape)}")
      mask = mask * given
    for i, m in enumerate(self.modalities):
      keep = tf.reshape(mask[:, i] > 0, [-1] + [1] * len(m.shape))
      x = tf.where(keep, xs[m.name], tf.zeros_like(xs[m.name]))
      if self.check_numerics:
        x = tf.debugging.assert_all_finite(x, f"modality '{m.name}' has NaN or Inf values")
      xs[m.name] = x
    return xs, mask

  # ---------------------------------------------------------------- pieces
  def _experts(self, xs, training):
    """Each modality's expert: loc, scale [B, M, D] float32."""
    locs, scales = [], []
    for m, encoder, head in zip(self.modalities, self.encoders, self.experts):
      loc, scale = head(encoder(xs[m.name], training=training))
      locs.append(loc)
      scales.append(scale)
    return tf.stack(locs, axis=1), tf.stack(scales, axis=1)

  def _decode_all(self, z, training):
    return {m.name: decoder(z, training=training)
            for m, decoder in zip(self.modalities, self.decoders)}

  def prior(self, batch_size):
    """p(z) = N(0, I) for a batch."""
    return objectives.standard_normal(batch_size, self.latent_dim)

  def posterior(self, loc, scale, mask):
    """q(z | present modalities) from expert parameters and a [B, M] mask."""
    return self.poe(loc, scale, mask=mask)

  def log_likelihood(self, index, x, params, training):
    """log p(x_i | z) per example [B]; the hook a learned similarity overrides."""
    del training
    return self.modalities[index].log_prob(x, params)

  def _normal(self, shape, seed):
    if seed is None:
      return keras.random.normal(shape, seed=self.seed_generator)
    if isinstance(seed, int):
      seed = [seed, 0]
    return tf.random.stateless_normal(shape, seed=tf.cast(seed, tf.int32))

  # ---------------------------------------------------------------- objective
  def compute_terms(self, data, training=False):
    """The sub-sampled objective, per example.

    Returns a dict:
      loss: [B], sum over subsets of -(sum_i lambda_i m_i log p(x_i|z) - kl_weight KL)
        (i over the subset's modalities, or every present one when
        subset_likelihood="all");
      kl: [B], KL of the joint subset; elbo: [B], the joint ELBO (lambda = beta = 1);
      nll: list over modalities of [B] joint-subset -log p(x_i|z) (masked);
      recon: list over modalities of [B] sum over subsets of m_i log p(x_i|z);
      mask: [B, M]; xs, params (joint subset's likelihood parameters), z (joint).
    """
    xs, mask = self.parse_inputs(data)
    loc, scale = self._experts(xs, training)
    batch = tf.shape(loc)[0]
    num = len(self.modalities)
    static = [tf.constant(s, tf.float32) for s in objectives.fixed_subsets(num)]
    subsets = list(static)
    score_all = self.subset_likelihood == "all"
    contains = [[score_all or bool(s[i]) for i in range(num)]
                for s in objectives.fixed_subsets(num)]
    if self.num_subsets > 0:
      rand = objectives.random_subsets(num, self.num_subsets, self.seed_generator)
      subsets += [rand[j] for j in range(self.num_subsets)]
      contains += [[True] * num] * self.num_subsets
    prior = self.prior(batch)
    zs, kls, masks = [], [], []
    for subset in subsets:
      eff = mask * subset[None]
      q = self.posterior(loc, scale, eff)
      z = q.loc + q.scale.diag * self._normal(tf.shape(q.loc), None)
      zs.append(z)
      kls.append(objectives.gaussian_kl(q, prior))
      masks.append(eff)
    nonempty = [tf.cast(tf.reduce_sum(eff, axis=1) > 0.0, tf.float32) for eff in masks]
    # Decode each modality once, for every subset that can contain it.
    lls = [[None] * num for _ in subsets]
    joint_params = {}
    for i, (m, decoder) in enumerate(zip(self.modalities, self.decoders)):
      idx = [s for s in range(len(subsets)) if contains[s][i]]
      params = decoder(tf.concat([zs[s] for s in idx], axis=0), training=training)
      chunks = tf.split(params, len(idx), axis=0)
      x_rep = tf.concat([xs[m.name]] * len(idx), axis=0)
      ll_all = tf.split(self.log_likelihood(i, x_rep, params, training), len(idx), axis=0)
      for s, ll in zip(idx, ll_all):
        # "own": the subset's present modalities; "all": every present modality
        # (of examples that have at least one modality of the subset).
        lls[s][i] = ll * (mask[:, i] * nonempty[s] if score_all else masks[s][:, i])
      joint_params[m.name] = chunks[0]
    loss = tf.zeros([batch])
    for s in range(len(subsets)):
      recon = tf.add_n([m.weight * lls[s][i] for i, m in enumerate(self.modalities)
                        if lls[s][i] is not None])
      loss += -recon + tf.cast(self.kl_weight, tf.float32) * kls[s]
    elbo = tf.add_n([lls[0][i] for i in range(num)]) - kls[0]
    # Per modality, the masked log-likelihood summed over subsets (unweighted):
    # lets subclasses weight each modality's term per player (VAE-GAN decoders).
    recon = [tf.add_n([lls[s][i] for s in range(len(subsets)) if lls[s][i] is not None])
             for i in range(num)]
    return {"loss": loss, "kl": kls[0], "elbo": elbo, "nll": [-ll for ll in lls[0]],
            "recon": recon, "mask": mask, "xs": xs, "params": joint_params, "z": zs[0]}

  def _update_trackers(self, terms):
    self.loss_tracker.update_state(terms["loss"])
    self.kl_tracker.update_state(terms["kl"])
    self.elbo_tracker.update_state(terms["elbo"])
    for i, tracker in enumerate(self.nll_trackers):
      tracker.update_state(terms["nll"][i], sample_weight=terms["mask"][:, i])
    return {m.name: m.result() for m in self.metrics}

  @property
  def metrics(self):
    return [self.loss_tracker, self.kl_tracker, self.elbo_tracker] + self.nll_trackers

  # ---------------------------------------------------------------- inference
  def encode(self, inputs, mask=None):
    """Posterior parameters (loc, scale) [B, D] given any subset of modalities."""
    xs, m = self._with_mask(inputs, mask)
    loc, scale = self._experts(xs, training=False)
    q = self.posterior(loc, scale, m)
    return q.loc, q.scale.diag

  def _with_mask(self, inputs, mask):
    inputs = dict(inputs) if isinstance(inputs, dict) else inputs
    if mask is not None:
      if not isinstance(inputs, dict):
        inputs = {self.modalities[0].name: inputs}
      inputs["mask"] = mask
    return self.parse_inputs(inputs)

  def decode(self, z):
    """Likelihood means {name: [B, *shape]} for latent codes z [B, D]."""
    params = self._decode_all(tf.cast(z, tf.float32), training=False)
    return {m.name: m.mean(params[m.name]) for m in self.modalities}

  def reconstruct(self, inputs, mask=None):
    """Decodes the posterior mean: every modality from the given subset."""
    loc, _ = self.encode(inputs, mask)
    return self.decode(loc)

  def call(self, inputs, training=False):
    return self.reconstruct(inputs)

  def generate(self, inputs, mask=None, num_samples=1, seed=None):
    """Fills every modality from any subset: z ~ q(z | given), decoded.

    Returns {name: [B, num_samples, *shape]} likelihood means (cross-modal
    generation, e.g. label -> image or image -> label).
    """
    loc, scale = self.encode(inputs, mask)
    batch = tf.shape(loc)[0]
    eps = self._normal(tf.stack([batch, num_samples, self.latent_dim]), seed)
    z = loc[:, None] + scale[:, None] * eps
    out = self.decode(tf.reshape(z, [-1, self.latent_dim]))
    return {n: tf.reshape(v, tf.concat([[batch, num_samples], tf.shape(v)[1:]], 0))
            for n, v in out.items()}

  def sample(self, num_samples, seed=None):
    """Unconditional samples z ~ p(z), decoded: {name: [num_samples, *shape]}."""
    return self.decode(self._normal(tf.stack([num_samples, self.latent_dim]), seed))

  def get_config(self):
    config = super().get_config()
    config.update({"modalities": [m.get_config() for m in self.modalities],
                   "latent_dim": self.latent_dim, "num_subsets": self.num_subsets,
                   "beta": self.beta, "eps": self.eps,
                   "check_numerics": self.check_numerics, "seed": self.seed,
                   "subset_likelihood": self.subset_likelihood})
    return config
