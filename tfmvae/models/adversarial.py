"""Several optimizers in one Keras model: the machinery of the adversarial families.

Larsen et al. (2016) train a VAE-GAN as three players, each with its own
optimizer: encoder (L_prior + L_llike), decoder (gamma L_llike - L_GAN) and
discriminator (L_GAN). `AdversarialMixin` gives a `keras.Model` subclass:

- `compile(encoder_optimizer=, decoder_optimizer=, discriminator_optimizer=)`,
  calling `super().compile(optimizer=None, ...)`; every discriminator gets its
  OWN optimizer (a clone: `from_config(get_config())`), under a `mixed_float16`
  policy each optimizer is wrapped in `keras.optimizers.LossScaleOptimizer`;
- every optimizer built on its variables as soon as the model is built, and
  `get_compile_config` / `compile_from_config` that (de)serialize all of them,
  so `.keras` reloads and `keras.callbacks.BackupAndRestore` keep their state
  (keras-team/keras#19389). `tf.train.Checkpoint(model=model)` follows plain
  attributes only (the encoder/decoder optimizers), not Python lists: the mixin
  also exposes every model variable (BatchNorm statistics, seed state, layers
  held in lists) and each discriminator optimizer to it.
- `apply_gradients_if`: an update that is skipped, optimizer state included,
  when a condition is false (Larsen's equilibrium rule), also under
  `tf.distribute` (the cond runs in cross-replica context, as Keras'
  LossScaleOptimizer does it).

The host class provides `player_variables()` -> {"encoder": [...],
"decoder": [...], "discriminators": [[...] per discriminator]}, a list
`self.discriminators`, `equilibrium` / `equilibrium_margin` attributes,
`adversarial_terms(data, training)` -> dict of per-example [B] losses ("loss":
encoder, "decoder_loss", "discriminator_losses": list) and equilibrium statistics
("real_bce_sum", "real_count", "fake_bce_sum", "fake_count"), and
`update_adversarial_trackers(terms, training)` -> logs; the mixin supplies
`train_step` / `test_step`.
"""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfmvae import objectives
from tfmvae.models import tracking

tfd = tfp.distributions


def unwrap_optimizer(optimizer):
  """The inner optimizer of a LossScaleOptimizer (else the optimizer itself)."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return optimizer.inner_optimizer
  return optimizer


def clone_optimizer(optimizer, name=None):
  """A fresh optimizer with the same hyper-parameters and no state."""
  optimizer = unwrap_optimizer(keras.optimizers.get(optimizer))
  config = optimizer.get_config()
  if name is not None:
    config["name"] = name
  return optimizer.__class__.from_config(config)


def all_reduce_sum(values):
  """Sums a list of tensors over replicas (identity without a strategy)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return values
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)


def equilibrium_flags(real_bce, fake_bce, equilibrium, margin):
  """Larsen's equilibrium band on the discriminator's mean cross-entropies.

  With e = `equilibrium` (ln 2 ~ 0.69 is an undecided discriminator) and
  m = `margin`:
    train the discriminator unless it wins too clearly: real_bce < e - m or
      fake_bce < e - m;
    train the decoder unless it loses too clearly: real_bce > e + m or
      fake_bce > e + m;
    if both would pause, train both.

  Returns:
    (train_discriminator, train_decoder), scalar bool tensors.
  """
  train_d = tf.logical_not(tf.logical_or(real_bce < equilibrium - margin,
                                         fake_bce < equilibrium - margin))
  train_g = tf.logical_not(tf.logical_or(real_bce > equilibrium + margin,
                                         fake_bce > equilibrium + margin))
  neither = tf.logical_not(tf.logical_or(train_d, train_g))
  return tf.logical_or(train_d, neither), tf.logical_or(train_g, neither)


def feature_log_likelihood(real_features, fake_features):
  """Larsen's learned similarity log N(Dis_l(x) | Dis_l(x~), I) per example.

  Args:
    real_features: Dis_l(x) [N, h, w, c] (treated as data: no gradient).
    fake_features: Dis_l(x~) [N, h, w, c], x~ the decoder mean.

  Returns:
    [N]: -0.5 sum (Dis_l(x) - Dis_l(x~))^2 - 0.5 D log(2 pi), D = h w c.
  """
  rank = len(fake_features.shape) - 1
  return tfd.Independent(tfd.Normal(fake_features, 1.0),
                         reinterpreted_batch_ndims=rank).log_prob(
                             tf.stop_gradient(real_features))


def _bce(logits, label):
  return tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.fill(tf.shape(logits), float(label)), logits=logits)


def gan_terms(real, fake, prior, present=None):
  """Per-example GAN losses of one discriminator from its logits.

  Args:
    real: [B, n] logits on the real x (one column per subset that decodes it).
    fake: [B, n] logits on the reconstructions x~(X) of those subsets.
    prior: [B] logits on decoded prior samples Dec(z_p).
    present: optional [B] 0/1, whether the real x exists (else its term is 0).

  Returns:
    dict of discriminator [B] = -[m sum_X log D(x) + sum_X log(1 - D(x~_X)) +
    log(1 - D(Dec(z_p)))], generator [B] = -[sum_X log D(x~_X) + log D(Dec(z_p))]
    (non-saturating), the probabilities d_real [B, n], d_fake [B, n], d_prior [B],
    and equilibrium sums real_bce_sum, real_count, fake_bce_sum, fake_count.
  """
  if present is None:
    present = tf.ones_like(prior)
  real_bce = _bce(real, 1.0) * present[:, None]
  fake_bce = _bce(fake, 0.0)
  prior_bce = _bce(prior, 0.0)
  copies = tf.cast(tf.shape(real)[1], tf.float32)
  return {
      "discriminator": tf.reduce_sum(real_bce, 1) + tf.reduce_sum(fake_bce, 1) + prior_bce,
      "generator": objectives.generator_loss([fake]) + objectives.generator_loss([prior]),
      "d_real": tf.sigmoid(real), "d_fake": tf.sigmoid(fake), "d_prior": tf.sigmoid(prior),
      "real_bce_sum": tf.reduce_sum(real_bce), "real_count": tf.reduce_sum(present) * copies,
      "fake_bce_sum": tf.reduce_sum(fake_bce) + tf.reduce_sum(prior_bce),
      "fake_count": tf.cast(tf.shape(prior)[0], tf.float32) * (copies + 1.0),
  }


def apply_gradients_if(optimizer, grads, variables, condition=None):
  """`optimizer.apply_gradients`, skipped entirely (no slot or iteration change)
  when `condition` (a scalar bool, equal on every replica) is False."""
  pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
  if not pairs:
    return
  grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
  if condition is None:
    optimizer.apply_gradients(zip(grads, variables))
    return

  def apply():
    optimizer.apply_gradients(zip(grads, variables))
    return tf.constant(True)

  if (not tf.distribute.has_strategy()
      or tf.__internal__.distribute.strategy_supports_no_merge_call()):
    tf.cond(condition, apply, lambda: tf.constant(False))
    return

  def merge_fn(distribution, grads, variables, condition):
    # DistributionStrategy cannot run a cond whose branch calls merge_call in a
    # replica context: evaluate it once, in cross-replica context.
    flag = distribution.experimental_local_results(condition)[0]

    def apply_all():
      distribution.extended.call_for_each_replica(
          lambda g, v: optimizer.apply_gradients(zip(g, v)), args=(grads, variables))
      return tf.constant(True)

    tf.cond(flag, apply_all, lambda: tf.constant(False))

  tf.distribute.get_replica_context().merge_call(merge_fn, args=(grads, variables, condition))


class AdversarialMixin:
  """Encoder / decoder / per-discriminator optimizers and the three-player step.

  Put it before the model class: `class VAEGAN(AdversarialMixin, MVAE)`.
  After `compile`, the model has `encoder_optimizer`, `decoder_optimizer` and
  `discriminator_optimizers` (one per entry of `self.discriminators`).
  """

  # ------------------------------------------------------------ settings
  ADVERSARIAL_CONFIG_KEYS = ("gamma", "pixel_weight", "discriminator_filters",
                             "feature_layer", "discriminator_hidden_units",
                             "discriminator_batch_norm", "equilibrium",
                             "equilibrium_margin")

  def set_adversarial_settings(self, gamma, pixel_weight, discriminator_filters,
                               feature_layer, discriminator_hidden_units,
                               discriminator_batch_norm, equilibrium, equilibrium_margin):
    """Stores the discriminator / learned-similarity settings (see the subclasses)."""
    self.gamma = float(gamma)
    self.pixel_weight = float(pixel_weight)
    self.discriminator_filters = int(discriminator_filters)
    self.feature_layer = int(feature_layer)
    self.discriminator_hidden_units = int(discriminator_hidden_units)
    self.discriminator_batch_norm = bool(discriminator_batch_norm)
    self.equilibrium = float(equilibrium)
    self.equilibrium_margin = None if equilibrium_margin is None else float(equilibrium_margin)

  def get_config(self):
    config = super().get_config()
    config.update({key: getattr(self, key) for key in self.ADVERSARIAL_CONFIG_KEYS})
    return config

  # ------------------------------------------------------------ state locking
  def _lock_state(self):
    # The base model builds itself in its __init__ (so reloads need no data);
    # the subclass adds its discriminators and trackers after that, then calls
    # `_finish_state()` to lock as Keras normally does at the end of build().
    if getattr(self, "_adversarial_state_complete", False):
      super()._lock_state()

  def _finish_state(self):
    self._adversarial_state_complete = True
    self._lock_state()

  # ------------------------------------------------------------ checkpoints
  def _trackable_children(self, save_type="checkpoint", **kwargs):
    # tf.train.Checkpoint only follows direct attributes: layers and optimizers
    # held in Python lists (encoders, decoders, discriminators, their optimizers,
    # convs inside nets) are invisible to it, so BatchNorm statistics, seed state
    # and the discriminators' optimizer state would not be saved. Expose every
    # model variable by its path and every discriminator optimizer by index.
    children = super()._trackable_children(save_type, **kwargs)
    if save_type == "checkpoint":
      tracking.add_variable_children(self, children)
      for k, opt in enumerate(getattr(self, "discriminator_optimizers", None) or []):
        children.setdefault(f"discriminator_optimizer_{k}", opt)
    return children

  # ------------------------------------------------------------ compile
  def compile(self, encoder_optimizer="rmsprop", decoder_optimizer=None,
              discriminator_optimizer=None, **kwargs):
    """Sets one optimizer per player (extra kwargs go to `keras.Model.compile`).

    Args:
      encoder_optimizer: optimizer (instance, name or config) of the encoders
        and expert heads.
      decoder_optimizer: optimizer of the decoders; None: a clone of the
        encoder's.
      discriminator_optimizer: one optimizer, cloned for each discriminator (so
        each has its own state), or a list with one per discriminator; None: a
        clone of the encoder's.
      **kwargs: `keras.Model.compile` arguments (jit_compile, run_eagerly, ...);
        `optimizer` must be absent or None (there is no single model optimizer).
    """
    if kwargs.pop("optimizer", None) is not None:
      raise ValueError(f"{type(self).__name__} trains several players: pass "
                       "encoder_optimizer=, decoder_optimizer= and discriminator_optimizer= "
                       "instead of optimizer=")
    encoder = keras.optimizers.get(encoder_optimizer)
    decoder = (clone_optimizer(encoder, "decoder_optimizer") if decoder_optimizer is None
               else keras.optimizers.get(decoder_optimizer))
    num = len(self.discriminators)
    if isinstance(discriminator_optimizer, (list, tuple)):
      if len(discriminator_optimizer) != num:
        raise ValueError(f"got {len(discriminator_optimizer)} discriminator optimizers for "
                         f"{num} discriminators")
      discriminators = [keras.optimizers.get(o) for o in discriminator_optimizer]
    else:
      proto = encoder if discriminator_optimizer is None else discriminator_optimizer
      discriminators = [clone_optimizer(proto, f"{d.name}_optimizer")
                        for d in self.discriminators]
    everything = [encoder, decoder] + discriminators
    if len({id(unwrap_optimizer(o)) for o in everything}) != len(everything):
      raise ValueError("each player needs its own optimizer instance (they hold per-variable "
                       "state); pass distinct optimizers or let compile clone them")
    super().compile(optimizer=None, **kwargs)
    self.encoder_optimizer = self._loss_scaled(encoder)
    self.decoder_optimizer = self._loss_scaled(decoder)
    self.discriminator_optimizers = [self._loss_scaled(o) for o in discriminators]
    if self.built:
      self.build_optimizers()

  def _loss_scaled(self, optimizer):
    if (self.dtype_policy.name == "mixed_float16"
        and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
      return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{optimizer.name}_scaled")
    return optimizer

  def player_groups(self):
    """[(optimizer, variables)] for every player, checked to partition the
    model's trainable variables exactly."""
    groups = self.player_variables()
    pairs = [(self.encoder_optimizer, groups["encoder"]),
             (self.decoder_optimizer, groups["decoder"])]
    pairs += list(zip(self.discriminator_optimizers, groups["discriminators"]))
    seen = {}
    for _, variables in pairs:
      for v in variables:
        if id(v) in seen:
          raise ValueError(f"variable {v.path} belongs to two players")
        seen[id(v)] = v
    missing = [v.path for v in self.trainable_variables if id(v) not in seen]
    if missing:
      raise ValueError(f"trainable variables that no player's optimizer updates: {missing}")
    return pairs

  def build_optimizers(self):
    """Creates every optimizer's slots now (needed before loading their state)."""
    for opt, variables in self.player_groups():
      if variables:
        opt.build(variables)

  def get_compile_config(self):
    if not getattr(self, "compiled", False) or getattr(self, "encoder_optimizer", None) is None:
      return {}
    config = dict(super().get_compile_config() or {})
    config.pop("optimizer", None)
    ser = keras.saving.serialize_keras_object
    config["encoder_optimizer"] = ser(self.encoder_optimizer)
    config["decoder_optimizer"] = ser(self.decoder_optimizer)
    config["discriminator_optimizer"] = [ser(o) for o in self.discriminator_optimizers]
    return config

  def compile_from_config(self, config):
    config = dict(config)
    de = keras.saving.deserialize_keras_object
    optimizers = {
        "encoder_optimizer": de(config.pop("encoder_optimizer")),
        "decoder_optimizer": de(config.pop("decoder_optimizer")),
        "discriminator_optimizer": [de(o) for o in config.pop("discriminator_optimizer")],
    }
    rest = keras.saving.deserialize_keras_object(config) if config else {}
    rest = {k: v for k, v in (rest or {}).items() if k != "optimizer"}
    self.compile(**optimizers, **rest)

  # ------------------------------------------------------------ training
  def update_flags(self, terms):
    """(train_discriminator, train_decoder) from the equilibrium band, or
    (None, None) when the rule is off (`equilibrium_margin` None). Statistics are
    summed over replicas, so every replica takes the same decision."""
    if self.equilibrium_margin is None:
      return None, None
    real_sum, real_n, fake_sum, fake_n = all_reduce_sum(
        [terms["real_bce_sum"], terms["real_count"], terms["fake_bce_sum"],
         terms["fake_count"]])
    real_bce = real_sum / tf.maximum(real_n, 1.0)
    fake_bce = fake_sum / tf.maximum(fake_n, 1.0)
    return equilibrium_flags(real_bce, fake_bce, self.equilibrium, self.equilibrium_margin)

  def on_train_step_end(self):
    """Hook after the updates (e.g. a step counter)."""

  def train_step(self, data):
    """One update per player, each from its own loss and optimizer:
    encoder <- loss, decoder <- decoder_loss, discriminator k <-
    discriminator_losses[k]; per-example losses averaged over the global batch
    (`tf.nn.compute_average_loss`), each scaled by its own optimizer
    (`scale_loss`: a LossScaleOptimizer under mixed_float16)."""
    with tf.GradientTape(persistent=True) as tape:
      terms = self.adversarial_terms(data, training=True)
      losses = [terms["loss"], terms["decoder_loss"]] + list(terms["discriminator_losses"])
      groups = self.player_groups()
      scaled = [opt.scale_loss(objectives.average_loss(l))
                for l, (opt, _) in zip(losses, groups)]
    grads = [tape.gradient(loss, variables) for loss, (_, variables) in zip(scaled, groups)]
    del tape
    train_d, train_g = self.update_flags(terms)
    conditions = [None, train_g] + [train_d] * len(self.discriminators)
    for (opt, variables), g, cond in zip(groups, grads, conditions):
      apply_gradients_if(opt, g, variables, cond)
    self.on_train_step_end()
    on = tf.constant(1.0)
    self.train_d_tracker.update_state(on if train_d is None else tf.cast(train_d, tf.float32))
    self.train_g_tracker.update_state(on if train_g is None else tf.cast(train_g, tf.float32))
    return self.update_adversarial_trackers(terms, training=True)

  def test_step(self, data):
    return self.update_adversarial_trackers(self.adversarial_terms(data, training=False),
                                            training=False)
