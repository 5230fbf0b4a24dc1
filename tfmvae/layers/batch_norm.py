"""BatchNormalization with batch statistics per group of examples.

A video model that encodes a whole sequence batch at once, frames [B * T, H, W, C],
computes BatchNorm statistics over all B * T frames. A model written frame by
frame (edenton/svg calls its encoder once per time step) normalizes each time
step's B frames with their own statistics. `GroupedBatchNormalization` gives the
latter without a loop: examples are split into G groups by index (example i belongs
to group i mod G, the fastest-varying part of a [B, G] layout flattened row-major),
and each group is normalized with its own mean and variance.

Moving statistics follow the momentum rule once per group, in group order,
exactly as G successive calls of an ordinary BatchNorm would (or `update_counts[g]`
successive calls with group g's statistics). With `unbiased_moving_variance=True`
the variance that enters the moving average is the unbiased one, n / (n - 1) times
the batch variance, as PyTorch's `BatchNorm2d` keeps it (normalization always uses
the biased batch variance, as both frameworks do).
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfmvae")
class GroupedBatchNormalization(keras.layers.BatchNormalization):
  """BatchNorm over the last axis with optional per-group batch statistics.

  With `groups=None` and default options the layer is `keras.layers.BatchNormalization`.

  Args:
    unbiased_moving_variance: feed the unbiased batch variance to the moving
      average (PyTorch's convention).
    **kwargs: `keras.layers.BatchNormalization` arguments (`axis` must be -1).

  Call arguments:
    inputs: [N, ..., C]; with `groups=G`, N must be a multiple of G.
    training: training mode: batch statistics and moving-average updates.
    groups: number of groups G (int or scalar tensor); None for one group.
    use_batch_statistics: normalize with batch statistics (default: `training`).
      True with `training=False` normalizes with the batch's statistics without
      touching the moving averages.
    update_counts: optional [G] int tensor: group g counts as `update_counts[g]`
      consecutive updates of the moving averages (default one each).

  Example:
    >>> bn = GroupedBatchNormalization(epsilon=1e-5)
    >>> y = bn(frames_bt, training=True, groups=num_steps)  # per-step statistics
  """

  def __init__(self, unbiased_moving_variance=False, **kwargs):
    super().__init__(**kwargs)
    if self.axis != -1:
      raise ValueError(f"GroupedBatchNormalization normalizes the last axis; got axis={self.axis}")
    self.unbiased_moving_variance = unbiased_moving_variance

  def call(self, inputs, training=None, groups=None, use_batch_statistics=None,
           update_counts=None):
    if use_batch_statistics is None:
      use_batch_statistics = training
    plain = groups is None and not self.unbiased_moving_variance and update_counts is None
    if plain and bool(use_batch_statistics) == bool(training):
      return super().call(inputs, training=training)
    out_dtype = inputs.dtype
    dtype = tf.float64 if inputs.dtype == tf.float64 else tf.float32  # half -> float32
    x = tf.cast(inputs, dtype)
    gamma = tf.cast(self.gamma, dtype) if self.scale else None
    beta = tf.cast(self.beta, dtype) if self.center else None
    if not use_batch_statistics:
      y = tf.nn.batch_normalization(x, tf.cast(self.moving_mean, dtype),
                                    tf.cast(self.moving_variance, dtype), beta, gamma,
                                    self.epsilon)
      return tf.cast(y, out_dtype)
    shape = tf.shape(x)
    num_groups = 1 if groups is None else groups
    grouped = tf.reshape(x, tf.concat([[-1, num_groups], shape[1:]], 0))  # [n, G, ..., C]
    rank = len(x.shape) + 1
    axes = [0] + list(range(2, rank - 1))
    mean, variance = tf.nn.moments(grouped, axes=axes, keepdims=True)  # [1, G, 1.., C]
    y = tf.nn.batch_normalization(grouped, mean, variance, beta, gamma, self.epsilon)
    if training and self.trainable:
      group_mean = tf.reshape(mean, [num_groups, -1])  # [G, C]
      group_var = tf.reshape(variance, [num_groups, -1])
      if self.unbiased_moving_variance:
        n = tf.cast(tf.size(grouped) // (num_groups * tf.shape(x)[-1]), dtype)
        group_var = group_var * n / tf.maximum(n - 1.0, 1.0)
      self._update_moving(group_mean, group_var, num_groups, update_counts)
    return tf.cast(tf.reshape(y, shape), out_dtype)

  def _update_moving(self, group_mean, group_var, num_groups, update_counts):
    """Sequential momentum updates, group after group, in closed form.

    After N updates with statistics s_1..s_N, m_N = a**N m_0 + (1 - a) sum_j a**(N-j) s_j
    (a = momentum). Group g repeated c_g times and ending at update e_g weighs
    a**(N - e_g) (1 - a**c_g).
    """
    dtype = self.moving_mean.dtype
    group_mean, group_var = tf.cast(group_mean, dtype), tf.cast(group_var, dtype)
    a = tf.constant(self.momentum, dtype)
    counts = (tf.ones([num_groups], dtype) if update_counts is None
              else tf.cast(update_counts, dtype))
    ends = tf.cumsum(counts)
    total = ends[-1]
    weights = tf.pow(a, total - ends) * (1.0 - tf.pow(a, counts))  # [G]
    keep = tf.pow(a, total)
    new_mean = keep * self.moving_mean + tf.reduce_sum(weights[:, None] * group_mean, 0)
    new_var = keep * self.moving_variance + tf.reduce_sum(weights[:, None] * group_var, 0)
    self.moving_mean.assign(new_mean)
    self.moving_variance.assign(new_var)

  def get_config(self):
    config = super().get_config()
    config["unbiased_moving_variance"] = self.unbiased_moving_variance
    return config
