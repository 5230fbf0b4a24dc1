"""A video VAE-GAN ("Method II"): the video MVAE (Method I) with learned similarity.

`VideoMVAE` (Method I) models x_{t-1} (a) and x_t (b) as two modalities of z_t
(PoE per time step, subsets S in {ab, a, b}). Method II puts a frame
discriminator D_a, D_b (`tfmvae.networks.Discriminator`) at each decoder output
and replaces the pixel term by Larsen et al.'s learned similarity:

    ELBO_t(S) = sum_{i in S} log N(Dis_l(x_i) | Dis_l(x~_i(S)), I)
                + sum_{i in S} [log D_i(x_i) + log(1 - D_i(x~_i(S)))]
                - beta KL(q(z_t | S) || p(z_t)),

x~ = the decoder mean, plus per step one decoded prior sample
z_p ~ p(z_t) (N(0, I), or the learned p(z_t | x_{<t})) shown to each D as a
fake. Players (as `tfmvae.models.VAEGAN`, with `tfmvae.models.adversarial`):

    encoder (frame encoders, LSTMs, expert/prior heads): sum_S [L_feat(S) + beta KL(S)]
    decoder (latent projections, frame decoders):        gamma sum_S L_feat(S) + L_gen
    D_a, D_b (each its own optimizer):                    L_GAN

(+ `pixel_weight` x the pixel NLL of Method I in the encoder and decoder terms).
Losses are summed over time and averaged over the global batch.
"""
import keras
import tensorflow as tf

from tfmvae.models import adversarial
from tfmvae.models.adversarial import AdversarialMixin
from tfmvae.models.video_mvae import SUBSETS
from tfmvae.models.video_mvae import VideoMVAE
from tfmvae.models.svg import flatten_time
from tfmvae.networks.discriminator import Discriminator

MODALITIES = ("a", "b")


@keras.saving.register_keras_serializable(package="tfmvae")
class VideoVAEGAN(AdversarialMixin, VideoMVAE):
  """Method II: `VideoMVAE` + frame discriminators + learned similarity.

  Args:
    gamma: weight of the feature likelihood in the decoders' loss (Larsen: 1e-6
      at 64x64 with summed features; larger for small nets / short runs).
    pixel_weight: weight of Method I's pixel NLL added to the feature terms.
    discriminator_filters, feature_layer, discriminator_hidden_units,
    discriminator_batch_norm: `Discriminator` settings (Dis_l = conv `feature_layer`).
    equilibrium, equilibrium_margin: Larsen's equilibrium band (None: off).
    **kwargs: `VideoMVAE` arguments (prior, image_size, z_dim, n_past, skip, ...).

  Example:
    >>> model = VideoVAEGAN(prior="learned", image_size=64, gamma=1e-3)
    >>> model.compile(encoder_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    >>> model.fit(frames_dataset, epochs=...)
    >>> samples = model.predict(frames[:, :5], num_future=10, num_samples=20, seed=0)

  Reference:
    Larsen et al., ICML 2016 (arXiv:1512.09300); Wu & Goodman, NeurIPS 2018.
  """

  def __init__(self, gamma=1e-3, pixel_weight=0.0, discriminator_filters=32, feature_layer=4,
               discriminator_hidden_units=512, discriminator_batch_norm=True,
               equilibrium=0.68, equilibrium_margin=None, **kwargs):
    super().__init__(**kwargs)
    self.set_adversarial_settings(gamma, pixel_weight, discriminator_filters, feature_layer,
                                  discriminator_hidden_units, discriminator_batch_norm,
                                  equilibrium, equilibrium_margin)
    shape = (self.image_size, self.image_size, self.channels)
    self.discriminators = [
        Discriminator(shape, filters=self.discriminator_filters,
                      feature_layer=self.feature_layer,
                      hidden_units=self.discriminator_hidden_units,
                      batch_norm=self.discriminator_batch_norm, name=f"discriminator_{m}")
        for m in MODALITIES]
    for d in self.discriminators:
      d.build((None,) + shape)
    mean = keras.metrics.Mean
    self.encoder_loss_tracker = mean(name="loss_encoder")
    self.decoder_loss_tracker = mean(name="loss_decoder")
    self.discriminator_loss_trackers = [mean(name=f"loss_discriminator_{m}") for m in MODALITIES]
    self.generator_loss_tracker = mean(name="loss_generator")
    self.feature_nll_tracker = mean(name="feature_nll")
    self.d_real_trackers = [mean(name=f"d_real_{m}") for m in MODALITIES]
    self.d_fake_trackers = [mean(name=f"d_fake_{m}") for m in MODALITIES]
    self.d_prior_trackers = [mean(name=f"d_prior_{m}") for m in MODALITIES]
    self.train_d_tracker = mean(name="update_rate_discriminator")
    self.train_g_tracker = mean(name="update_rate_decoder")
    self._finish_state()

  def compile(self, encoder_optimizer=None, decoder_optimizer=None,
              discriminator_optimizer=None, **kwargs):
    """Three players; the default is Adam(1e-3) (VideoMVAE's) for every one."""
    if encoder_optimizer is None:
      encoder_optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    super().compile(encoder_optimizer=encoder_optimizer, decoder_optimizer=decoder_optimizer,
                    discriminator_optimizer=discriminator_optimizer, **kwargs)

  def player_variables(self):
    groups = self.variable_groups()
    disc = [d.trainable_variables for d in self.discriminators]
    disc_ids = {id(v) for vs in disc for v in vs}
    return {"encoder": [v for v in groups["encoder"] if id(v) not in disc_ids],
            "decoder": groups["decoder"], "discriminators": disc}

  # ---------------------------------------------------------------- objective
  def adversarial_terms(self, data, training):
    """Method I's terms plus, per example [B] (summed over time):

    loss (encoder), decoder_loss, generator_loss, discriminator_losses [a, b],
    feature_nll {S: [B]}, d_real / d_fake / d_prior per modality, and the
    equilibrium statistics.
    """
    frames = self._frames(data)
    terms = self.compute_terms(frames, training=training)
    batch, steps = tf.shape(frames)[0], tf.shape(frames)[1] - 1
    n = batch * steps
    per_example = lambda x: tf.reduce_sum(tf.reshape(x, [batch, steps]), axis=1)  # noqa: E731
    names = [s for s, _ in SUBSETS]
    feature_nll = {s: tf.zeros([batch]) for s in names}
    p_loc, p_scale = (tf.reshape(v, [n, self.z_dim]) for v in terms["prior"])
    z_prior = p_loc + p_scale * keras.random.normal(tf.shape(p_loc), seed=self.seed_generator)
    gen, disc_losses, probs = tf.zeros([batch]), [], []
    sums = {k: tf.zeros([]) for k in ("real_bce_sum", "real_count", "fake_bce_sum",
                                       "fake_count")}
    for k, m in enumerate(MODALITIES):
      subsets = [s for s in names if m in terms["recon"][s]]
      real = flatten_time(terms["targets"][m])  # [N, H, W, C]
      fakes = tf.concat([flatten_time(terms["recon"][s][m]) for s in subsets], axis=0)
      x_prior = self.likelihood_mean(self.decode(z_prior, terms["skips"], m, training=training))
      logits, features = self.discriminators[k](tf.concat([real, fakes, x_prior], 0),
                                                training=training)
      logits = tf.reshape(logits, [-1])
      real_f, fake_f = features[:n], features[n:n * (len(subsets) + 1)]
      ll = adversarial.feature_log_likelihood(tf.tile(real_f, [len(subsets), 1, 1, 1]), fake_f)
      for s, ll_s in zip(subsets, tf.split(ll, len(subsets))):
        feature_nll[s] += -per_example(ll_s)
      fake_logits = tf.reshape(logits[n:n * (len(subsets) + 1)], [len(subsets), n])
      gan = adversarial.gan_terms(
          tf.tile(logits[:n, None], [1, len(subsets)]), tf.transpose(fake_logits),
          logits[n * (len(subsets) + 1):])
      disc_losses.append(per_example(gan["discriminator"]))
      gen += per_example(gan["generator"])
      for key in sums:
        sums[key] += gan[key]
      probs.append((gan["d_real"], gan["d_fake"], gan["d_prior"]))
    likelihood = {s: feature_nll[s] + self.pixel_weight * terms["nll"][s] for s in names}
    terms["loss"] = tf.add_n([likelihood[s] + self.beta * terms["kl"][s] for s in names])
    terms["decoder_loss"] = self.gamma * tf.add_n(list(likelihood.values())) + gen
    terms.update({"generator_loss": gen, "discriminator_losses": disc_losses,
                  "feature_nll": feature_nll, "d_probs": probs, **sums})
    return terms

  def on_train_step_end(self):
    self.train_steps.assign_add(1)

  # ---------------------------------------------------------------- trackers
  def update_adversarial_trackers(self, terms, training):
    self.encoder_loss_tracker.update_state(terms["loss"])
    self.decoder_loss_tracker.update_state(terms["decoder_loss"])
    self.generator_loss_tracker.update_state(terms["generator_loss"])
    self.nll_tracker.update_state(tf.add_n(list(terms["nll"].values())))
    self.kl_tracker.update_state(tf.add_n(list(terms["kl"].values())))
    self.feature_nll_tracker.update_state(tf.add_n(list(terms["feature_nll"].values())))
    for k in range(len(MODALITIES)):
      self.discriminator_loss_trackers[k].update_state(terms["discriminator_losses"][k])
      real, fake, prior = terms["d_probs"][k]
      self.d_real_trackers[k].update_state(real)
      self.d_fake_trackers[k].update_state(fake)
      self.d_prior_trackers[k].update_state(prior)
    metrics = self.metrics if training else [
        m for m in self.metrics if m not in (self.train_d_tracker, self.train_g_tracker)]
    return {m.name: m.result() for m in metrics}

  @property
  def metrics(self):
    out = [self.encoder_loss_tracker, self.decoder_loss_tracker]
    out += list(self.discriminator_loss_trackers)
    out += [self.generator_loss_tracker, self.nll_tracker, self.kl_tracker,
            self.feature_nll_tracker]
    for k in range(len(MODALITIES)):
      out += [self.d_real_trackers[k], self.d_fake_trackers[k], self.d_prior_trackers[k]]
    return out + [self.train_d_tracker, self.train_g_tracker]
