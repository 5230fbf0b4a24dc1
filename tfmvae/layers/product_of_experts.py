"""Product of Gaussian experts: the MVAE joint posterior (Wu & Goodman, 2018)."""
import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def product_of_experts(loc, scale, mask=None, prior=None, eps=1e-8):
  """Precision-weighted product of diagonal Gaussian experts and one prior expert.

  Math (all experts diagonal Gaussian, i indexes present experts, 0 the prior):

      var_i = scale_i**2 + eps,  T_i = 1 / var_i          (precision)
      var   = 1 / (T_0 + sum_i m_i T_i)
      loc   = var * (T_0 mu_0 + sum_i m_i T_i mu_i)

  with m_i in {0, 1} the presence mask. It is evaluated in log space: with
  l_i = log m_i - log var_i (l_i = -inf for a missing expert),
  log var = -logsumexp_i(l_i) and loc = sum_i softmax(l)_i mu_i, so precisions
  from 1e-30 to 1e30 neither overflow nor lose the small experts. Exactly one
  prior expert takes part; a row whose experts are all missing is the prior.

  Args:
    loc: [batch, experts, latent] expert means.
    scale: [batch, experts, latent] expert standard deviations (> 0).
    mask: optional [batch, experts] float presence mask (1 present, 0 missing).
    prior: optional (loc, scale), each [batch, latent] (or broadcastable); the
      default is the standard normal N(0, I).
    eps: added to every expert's variance (the official MVAE code's 1e-8).

  Returns:
    (loc, scale) of the product, float32 [batch, latent].
  """
  loc = tf.cast(loc, tf.float32)
  scale = tf.cast(scale, tf.float32)
  if prior is None:
    prior_loc = tf.zeros_like(loc[:, 0])
    prior_log_var = tf.zeros_like(loc[:, 0])
  else:
    prior_loc = tf.broadcast_to(tf.cast(prior[0], tf.float32), tf.shape(loc[:, 0]))
    prior_scale = tf.broadcast_to(tf.cast(prior[1], tf.float32), tf.shape(loc[:, 0]))
    prior_log_var = _log_var(prior_scale, eps)
  log_var = _log_var(scale, eps)  # [B, E, D]
  neg_inf = tf.constant(-float("inf"), tf.float32)
  log_prec = -log_var
  if mask is not None:
    mask = tf.cast(mask, tf.float32)[:, :, None]  # [B, E, 1]
    log_prec = tf.where(mask > 0.0, log_prec + tf.math.log(tf.maximum(mask, 1e-30)), neg_inf)
  all_log_prec = tf.concat([-prior_log_var[:, None], log_prec], axis=1)  # [B, 1+E, D]
  all_loc = tf.concat([prior_loc[:, None], loc], axis=1)
  weights = tf.nn.softmax(all_log_prec, axis=1)
  # A missing expert's loc may be anything (even NaN from a dummy input): zero it
  # so that 0 * NaN cannot leak into the product.
  all_loc = tf.where(weights > 0.0, all_loc, tf.zeros_like(all_loc))
  joint_loc = tf.reduce_sum(weights * all_loc, axis=1)
  joint_log_var = -tf.reduce_logsumexp(all_log_prec, axis=1)
  return joint_loc, tf.exp(0.5 * joint_log_var)


def _log_var(scale, eps):
  """log(scale**2 + eps), stable for tiny and huge scales."""
  log_sq = 2.0 * tf.math.log(scale)
  if eps <= 0:
    return log_sq
  return tf.math.reduce_logsumexp(
      tf.stack([log_sq, tf.fill(tf.shape(log_sq), tf.math.log(tf.constant(eps, tf.float32)))]),
      axis=0)


@keras.saving.register_keras_serializable(package="tfmvae")
class ProductOfExperts(keras.layers.Layer):
  """Fuses Gaussian experts with one prior expert into q(z | present modalities).

  q(z | X) is proportional to p(z) * prod_{i present} q(z | x_i); for diagonal
  Gaussians this is Gaussian with precision T = T_0 + sum_i m_i T_i and mean
  (T_0 mu_0 + sum_i m_i T_i mu_i) / T (see `product_of_experts` for the log-space
  form). Computed in float32 whatever the input dtype (mixed precision safe).

  Args:
    eps: variance floor added to every expert (default 1e-8, as Wu & Goodman).

  Call arguments:
    loc: [batch, experts, latent] expert means.
    scale: [batch, experts, latent] expert standard deviations.
    mask: optional [batch, experts] float mask, 1 present and 0 missing.
    prior: optional (loc, scale) [batch, latent] replacing the N(0, I) prior expert
      (e.g. a video model's learned prior).

  Returns:
    `tfd.MultivariateNormalDiag` with float32 parameters, batch shape [batch],
    event shape [latent].

  Example:
    >>> poe = ProductOfExperts()
    >>> q = poe(tf.zeros([2, 3, 4]), tf.ones([2, 3, 4]), mask=tf.ones([2, 3]))
    >>> q.stddev()  # 1 / sqrt(4): prior plus three unit experts

  Reference:
    Wu & Goodman, "Multimodal Generative Models for Scalable Weakly-Supervised
    Learning", NeurIPS 2018, arXiv:1802.05335.
  """

  def __init__(self, eps=1e-8, **kwargs):
    super().__init__(**kwargs)
    self.eps = eps

  def __call__(self, loc, scale, mask=None, prior=None):
    # Keras' __call__ machinery does not handle a Distribution output: the layer
    # has no weights, so the plain call is equivalent.
    return self.call(loc, scale, mask=mask, prior=prior)

  def call(self, loc, scale, mask=None, prior=None):
    joint_loc, joint_scale = product_of_experts(loc, scale, mask=mask, prior=prior, eps=self.eps)
    return tfd.MultivariateNormalDiag(loc=joint_loc, scale_diag=joint_scale)

  def get_config(self):
    config = super().get_config()
    config.update({"eps": self.eps})
    return config
