"""The multimodal VAE with a learned similarity metric (MVAE + Larsen's VAE-GAN).

Model: the MVAE (`tfmvae.models.MVAE`: p(z) prod_i p(x_i|z), product-of-experts
posterior, sub-sampled subsets X) where every image modality i (rank-3 shape)
gets a discriminator D_i (`tfmvae.networks.Discriminator`) and its pixel
likelihood is replaced by a Gaussian in D_i's l-th layer:

    log p(Dis_l(x_i) | z) = log N(Dis_l(x_i) | Dis_l(x~_i), I),  x~_i = E[Dec_i(z)],

(+ `pixel_weight` * the ordinary pixel log-likelihood when pixel_weight > 0).
Non-image modalities keep their ordinary likelihoods. Per subset X, with
z ~ q(z|X) and z_p ~ p(z):

    L_llike(X) = -sum_{i in X} lambda_i log p(.|z)        (features for images)
    L_prior(X) = kl_weight KL(q(z|X) || p(z))
    L_GAN      = sum_{image i} [log D_i(x_i) + log(1 - D_i(x~_i(X))) + log(1 - D_i(Dec_i(z_p)))]

The real term counts only where x_i is present; a reconstruction of an example
whose image is missing is a cross-modal generation, still a fake.
Players and optimizers (Larsen et al., Alg. 1):

    encoders + expert heads:  L_prior + L_llike          (encoder_optimizer)
    decoders:                 gamma_i L_llike_i + L_gen  (decoder_optimizer)
    discriminator D_i:        -L_GAN_i                   (its own optimizer)

with L_gen the non-saturating generator loss -log D_i(fakes), gamma_i = `gamma`
for image decoders and 1 for non-image decoders (which have no adversary; a
tiny gamma would freeze them). An optional equilibrium band skips the
discriminator's or the decoders' update while the other side loses badly.

Shapes: as MVAE (dict {name: [B, *shape]} + "mask" [B, M]); per-example losses
are [B] and averaged over the global batch (`objectives.average_loss`).
"""
import keras
import tensorflow as tf

from tfmvae.models import adversarial
from tfmvae.models.adversarial import AdversarialMixin
from tfmvae.models.mvae import MVAE
from tfmvae.networks.discriminator import Discriminator


@keras.saving.register_keras_serializable(package="tfmvae")
class VAEGAN(AdversarialMixin, MVAE):
  """Multimodal VAE-GAN: MVAE with discriminator-feature likelihoods.

  Args:
    modalities: list of `tfmvae.modalities.Modality`; at least one image (rank 3).
    latent_dim: size of z (Larsen CelebA: 128).
    gamma: weight of the feature likelihood in the decoders' loss (Larsen's
      CelebA code: 1e-6).
    pixel_weight: weight of the ordinary pixel log-likelihood added to each
      image term (0: pure learned similarity).
    discriminator_filters: F of `Discriminator` (32: Larsen's 32-128-256-256).
    feature_layer: l, the convolution whose activations are Dis_l (Larsen: 4).
    discriminator_hidden_units: dense units before the logit (Larsen: 512).
    discriminator_batch_norm: BatchNorm in the discriminators.
    equilibrium: centre of the equilibrium band (a mean BCE; ln 2 ~ 0.69 is an
      undecided discriminator).
    equilibrium_margin: half-width of the band; None disables the rule.
    **kwargs: `MVAE` arguments (num_subsets, beta, eps, seed, ...).

  Call arguments:
    inputs: as `MVAE`; returns reconstructions from the posterior mean.

  Example:
    >>> from tfmvae import modalities as mods
    >>> model = VAEGAN([mods.image(shape=(32, 32, 1)), mods.label(10)], latent_dim=16)
    >>> model.compile(encoder_optimizer=keras.optimizers.RMSprop(3e-4),
    ...               decoder_optimizer=keras.optimizers.RMSprop(3e-4),
    ...               discriminator_optimizer=keras.optimizers.RMSprop(3e-4))
    >>> model.fit(dataset.batch(64), epochs=1)

  Reference:
    Larsen, Sønderby, Larochelle & Winther, "Autoencoding beyond pixels using a
    learned similarity metric", ICML 2016, arXiv:1512.09300; Wu & Goodman,
    arXiv:1802.05335 (MVAE).
  """

  def __init__(self, modalities, latent_dim=128, gamma=1e-6, pixel_weight=0.0,
               discriminator_filters=32, feature_layer=4, discriminator_hidden_units=512,
               discriminator_batch_norm=True, equilibrium=0.68, equilibrium_margin=None,
               **kwargs):
    super().__init__(modalities, latent_dim=latent_dim, **kwargs)
    self.set_adversarial_settings(gamma, pixel_weight, discriminator_filters, feature_layer,
                                  discriminator_hidden_units, discriminator_batch_norm,
                                  equilibrium, equilibrium_margin)
    self.image_indices = [i for i, m in enumerate(self.modalities) if len(m.shape) == 3]
    if not self.image_indices:
      raise ValueError(f"a VAEGAN needs an image modality (rank-3 shape); got "
                       f"{[(m.name, m.shape) for m in self.modalities]}")
    self.discriminators = [
        Discriminator(self.modalities[i].shape, filters=self.discriminator_filters,
                      feature_layer=self.feature_layer,
                      hidden_units=self.discriminator_hidden_units,
                      batch_norm=self.discriminator_batch_norm,
                      name=f"{self.modalities[i].name}_discriminator")
        for i in self.image_indices]
    for d in self.discriminators:
      d.build((None,) + d.image_shape)
    names = self.modality_names
    image_names = [names[i] for i in self.image_indices]
    mean = keras.metrics.Mean
    self.encoder_loss_tracker = mean(name="loss_encoder")
    self.decoder_loss_tracker = mean(name="loss_decoder")
    self.discriminator_loss_trackers = [mean(name=f"loss_discriminator_{n}") for n in image_names]
    self.generator_loss_tracker = mean(name="loss_generator")
    self.pixel_nll_trackers = {n: mean(name=f"nll_{n}") for n in names}
    self.feature_nll_trackers = {n: mean(name=f"feature_nll_{n}") for n in image_names}
    self.d_real_trackers = {n: mean(name=f"d_real_{n}") for n in image_names}
    self.d_fake_trackers = {n: mean(name=f"d_fake_{n}") for n in image_names}
    self.d_prior_trackers = {n: mean(name=f"d_prior_{n}") for n in image_names}
    self.train_d_tracker = mean(name="update_rate_discriminator")
    self.train_g_tracker = mean(name="update_rate_decoder")
    self._finish_state()

  # ---------------------------------------------------------------- players
  def player_variables(self):
    """Trainable variables per player: encoder (encoders, expert heads, PoE),
    decoder (every decoder) and one list per discriminator."""
    encoder = []
    for layer in list(self.encoders) + list(self.experts) + [self.poe]:
      encoder += layer.trainable_variables
    decoder = []
    for layer in self.decoders:
      decoder += layer.trainable_variables
    return {"encoder": encoder, "decoder": decoder,
            "discriminators": [d.trainable_variables for d in self.discriminators]}

  # ---------------------------------------------------------------- likelihood
  def log_likelihood(self, index, x, params, training):
    """Image modalities: log N(Dis_l(x) | Dis_l(x~), I) (+ pixel_weight * pixel
    log-likelihood), x~ the decoder mean; others: the ordinary likelihood.

    x and params hold the examples of every subset that decodes modality
    `index`, stacked subset-major ([n * B, ...], the joint subset first). The
    discriminator's logits on x and x~ are kept for the GAN term of the same
    `compute_terms` call.
    """
    if index not in self.image_indices:
      return super().log_likelihood(index, x, params, training)
    modality = self.modalities[index]
    disc = self.discriminators[self.image_indices.index(index)]
    x_tilde = modality.mean(params)
    n = tf.shape(x)[0]
    logits, features = disc(tf.concat([x, x_tilde], axis=0), training=training)
    feature_ll = adversarial.feature_log_likelihood(features[:n], features[n:])
    pixel_ll = super().log_likelihood(index, x, params, training)
    cache = getattr(self, "_gan_cache", None)
    if cache is not None:
      cache[index] = {"real_logits": tf.reshape(logits[:n], [-1]),
                      "fake_logits": tf.reshape(logits[n:], [-1]),
                      "feature_ll": feature_ll, "pixel_ll": pixel_ll}
    if self.pixel_weight > 0:
      return feature_ll + self.pixel_weight * pixel_ll
    return feature_ll

  # ---------------------------------------------------------------- objective
  def compute_terms(self, data, training=False):
    """MVAE's terms (with feature likelihoods) plus the adversarial ones.

    Adds to `MVAE.compute_terms`' dict (all per example, [B]):
      decoder_loss: sum_i gamma_i lambda_i (-sum_X m_i log p(.|z)) + L_gen;
      generator_loss: L_gen, -log D(x~) over reconstructions and prior samples;
      discriminator_losses: list per discriminator of
        -[m_i sum_X log D(x_i) + sum_X log(1 - D(x~_i(X))) + log(1 - D(Dec(z_p)))];
      pixel_nll / feature_nll: dicts {name: [B]} for the joint subset;
      d_real, d_fake, d_prior: dicts of D's probabilities (d_real/d_fake [B, n]);
      real_bce_sum, real_count, fake_bce_sum, fake_count: equilibrium statistics.
    """
    cache = {}
    object.__setattr__(self, "_gan_cache", cache)  # Untracked, lives for one trace.
    try:
      terms = super().compute_terms(data, training=training)
    finally:
      object.__setattr__(self, "_gan_cache", None)
    mask = terms["mask"]
    batch = tf.shape(mask)[0]
    z_prior = self._normal(tf.stack([batch, self.latent_dim]), None)
    gen_total = tf.zeros([batch])
    disc_losses, d_real, d_fake, d_prior = [], {}, {}, {}
    real_bce_sum, real_count = tf.zeros([]), tf.zeros([])
    fake_bce_sum, fake_count = tf.zeros([]), tf.zeros([])
    pixel_nll = {n: terms["nll"][i] for i, n in enumerate(self.modality_names)}
    feature_nll = {}
    for k, i in enumerate(self.image_indices):
      name = self.modality_names[i]
      c = cache[i]
      real = tf.transpose(tf.reshape(c["real_logits"], [-1, batch]))  # [B, n]
      fake = tf.transpose(tf.reshape(c["fake_logits"], [-1, batch]))  # [B, n]
      x_prior = self.modalities[i].mean(self.decoders[i](z_prior, training=training))
      prior_logits, _ = self.discriminators[k](x_prior, training=training)
      prior = tf.reshape(prior_logits, [batch])
      present = mask[:, i]
      gan = adversarial.gan_terms(real, fake, prior, present)
      disc_losses.append(gan["discriminator"])
      gen_total += gan["generator"]
      real_bce_sum += gan["real_bce_sum"]
      real_count += gan["real_count"]
      fake_bce_sum += gan["fake_bce_sum"]
      fake_count += gan["fake_count"]
      d_real[name], d_fake[name], d_prior[name] = gan["d_real"], gan["d_fake"], gan["d_prior"]
      pixel_nll[name] = -c["pixel_ll"][:batch] * present
      feature_nll[name] = -c["feature_ll"][:batch] * present
    decoder_loss = gen_total
    for i, m in enumerate(self.modalities):
      scale = self.gamma if i in self.image_indices else 1.0
      decoder_loss += -scale * m.weight * terms["recon"][i]
    terms.update({"decoder_loss": decoder_loss, "generator_loss": gen_total,
                  "discriminator_losses": disc_losses, "pixel_nll": pixel_nll,
                  "feature_nll": feature_nll, "d_real": d_real, "d_fake": d_fake,
                  "d_prior": d_prior, "real_bce_sum": real_bce_sum, "real_count": real_count,
                  "fake_bce_sum": fake_bce_sum, "fake_count": fake_count})
    return terms

  # ---------------------------------------------------------------- training
  def adversarial_terms(self, data, training):
    """The per-example losses of every player (`AdversarialMixin.train_step`)."""
    return self.compute_terms(data, training=training)

  def on_train_step_end(self):
    self.train_steps.assign_add(1)

  def update_adversarial_trackers(self, terms, training):
    mask = terms["mask"]
    self.encoder_loss_tracker.update_state(terms["loss"])
    self.decoder_loss_tracker.update_state(terms["decoder_loss"])
    self.generator_loss_tracker.update_state(terms["generator_loss"])
    self.kl_tracker.update_state(terms["kl"])
    for tracker, loss in zip(self.discriminator_loss_trackers, terms["discriminator_losses"]):
      tracker.update_state(loss)
    for i, name in enumerate(self.modality_names):
      self.pixel_nll_trackers[name].update_state(terms["pixel_nll"][name],
                                                 sample_weight=mask[:, i])
    for i in self.image_indices:
      name = self.modality_names[i]
      present = mask[:, i]
      self.feature_nll_trackers[name].update_state(terms["feature_nll"][name],
                                                   sample_weight=present)
      real = terms["d_real"][name]
      self.d_real_trackers[name].update_state(
          real, sample_weight=tf.broadcast_to(present[:, None], tf.shape(real)))
      self.d_fake_trackers[name].update_state(terms["d_fake"][name])
      self.d_prior_trackers[name].update_state(terms["d_prior"][name])
    metrics = self.metrics if training else [
        m for m in self.metrics if m not in (self.train_d_tracker, self.train_g_tracker)]
    return {m.name: m.result() for m in metrics}

  @property
  def metrics(self):
    image_names = [self.modality_names[i] for i in self.image_indices]
    out = [self.encoder_loss_tracker, self.decoder_loss_tracker]
    out += list(self.discriminator_loss_trackers)
    out += [self.generator_loss_tracker, self.kl_tracker]
    out += [self.pixel_nll_trackers[n] for n in self.modality_names]
    out += [self.feature_nll_trackers[n] for n in image_names]
    for n in image_names:
      out += [self.d_real_trackers[n], self.d_fake_trackers[n], self.d_prior_trackers[n]]
    out += [self.train_d_tracker, self.train_g_tracker]
    return out
