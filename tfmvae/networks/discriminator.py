"""Image discriminator with a feature tap: Larsen et al. (2016)'s CelebA net.

The VAE-GAN ("learned similarity metric") scores reconstructions in the
discriminator's feature space, so the discriminator returns two things: its
real/fake logit and the activations Dis_l(x) of one chosen convolution.
"""
import keras
from keras import layers
from keras import ops


def strided_blocks(side, max_blocks=3):
  """Number of stride-2 convolutions for a square side: halve (rounding up,
  "same" padding) while the side is above 4, at most `max_blocks` times.

  64 -> 8 (3 blocks, Larsen's CelebA net), 32 -> 4 (3), 28 -> 4 (3), 16 -> 4 (2).
  """
  side, blocks = int(side), 0
  while side > 4 and blocks < max_blocks:
    side = (side + 1) // 2
    blocks += 1
  return blocks, side


@keras.saving.register_keras_serializable(package="tfmvae")
class Discriminator(keras.Model):
  """Real/fake image discriminator that also returns Dis_l(x).

  Architecture (Larsen et al. 2016, CelebA 64x64), with F = `filters`:

      conv 5x5 F, ReLU                                   (conv 1)
      conv 5x5 stride 2, 4F / 8F / 8F, BN, ReLU          (convs 2..4)
      flatten -> dense `hidden_units`, BN, ReLU -> dense 1 (logit, float32)

  F = 32 gives Larsen's 32 -> 128 / 256 / 256 -> 512. The number of stride-2
  convolutions is scaled to the image: halving while the side is above 4, at
  most three (64 -> 8x8, 32 or 28 -> 4x4, 16 -> 4x4 with two), so small test
  images keep the same net. Dis_l is the post-activation output of conv
  number `feature_layer` (1-based; Larsen uses the 4th).

  Args:
    image_shape: (height, width, channels).
    filters: F, filters of the first convolution.
    feature_layer: l, which convolution's activations are the features (1..number
      of convs).
    hidden_units: size of the dense layer before the logit (Larsen: 512).
    kernel_size: convolution kernel size (Larsen: 5).
    batch_norm: BatchNorm after the strided convs and the dense layer.
    activation: activation name (Larsen: ReLU).

  Call arguments:
    x: images [B, H, W, C] in [0, 1].
    training: BatchNorm mode.

  Returns:
    (logits [B, 1], features [B, h_l, w_l, c_l]), both float32 whatever the
    dtype policy.

  Example:
    >>> d = Discriminator((64, 64, 3))
    >>> logits, feats = d(tf.zeros([2, 64, 64, 3]))   # [2, 1], [2, 8, 8, 256]

  Reference:
    Larsen, Sønderby, Larochelle & Winther, "Autoencoding beyond pixels using a
    learned similarity metric", ICML 2016, arXiv:1512.09300.
  """

  def __init__(self, image_shape, filters=32, feature_layer=4, hidden_units=512,
               kernel_size=5, batch_norm=True, activation="relu", **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(int(s) for s in image_shape)
    if len(self.image_shape) != 3:
      raise ValueError(f"image_shape must be (height, width, channels); got {image_shape}")
    self.filters = int(filters)
    self.feature_layer = int(feature_layer)
    self.hidden_units = int(hidden_units)
    self.kernel_size = int(kernel_size)
    self.batch_norm = bool(batch_norm)
    self.activation = activation
    num_strided, _ = strided_blocks(min(self.image_shape[:2]))
    num_convs = 1 + num_strided
    if not 1 <= self.feature_layer <= num_convs:
      raise ValueError(f"feature_layer must be in [1, {num_convs}] for images of shape "
                       f"{self.image_shape} ({num_convs} convolutions); got {feature_layer}")
    multipliers = (4, 8, 8)[:num_strided]
    self.convs, self.norms = [], []
    self.convs.append(layers.Conv2D(self.filters, self.kernel_size, padding="same",
                                    name="conv1"))
    self.norms.append(None)
    for i, mult in enumerate(multipliers):
      self.convs.append(layers.Conv2D(self.filters * mult, self.kernel_size, strides=2,
                                      padding="same", use_bias=not self.batch_norm,
                                      name=f"conv{i + 2}"))
      self.norms.append(layers.BatchNormalization(name=f"bn{i + 2}") if self.batch_norm
                        else None)
    self.act = layers.Activation(activation)
    self.flatten = layers.Flatten()
    self.dense = layers.Dense(self.hidden_units, use_bias=not self.batch_norm, name="hidden")
    self.dense_norm = (layers.BatchNormalization(name="bn_hidden") if self.batch_norm
                       else None)
    self.logit = layers.Dense(1, dtype="float32", name="logit")

  @property
  def num_convs(self):
    return len(self.convs)

  def build(self, input_shape=None):
    if self.built:
      return
    shape = (None,) + self.image_shape
    for conv, norm in zip(self.convs, self.norms):
      conv.build(shape)
      shape = conv.compute_output_shape(shape)
      if norm is not None:
        norm.build(shape)
    flat = (None, shape[1] * shape[2] * shape[3])
    self.dense.build(flat)
    if self.dense_norm is not None:
      self.dense_norm.build((None, self.hidden_units))
    self.logit.build((None, self.hidden_units))

  def call(self, x, training=None):
    features = None
    h = x
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      h = conv(h)
      if norm is not None:
        h = norm(h, training=training)
      h = self.act(h)
      if i + 1 == self.feature_layer:
        features = h
    h = self.dense(self.flatten(h))
    if self.dense_norm is not None:
      h = self.dense_norm(h, training=training)
    logits = self.logit(self.act(h))
    return ops.cast(logits, "float32"), ops.cast(features, "float32")

  def get_config(self):
    config = super().get_config()
    config.update({"image_shape": self.image_shape, "filters": self.filters,
                   "feature_layer": self.feature_layer, "hidden_units": self.hidden_units,
                   "kernel_size": self.kernel_size, "batch_norm": self.batch_norm,
                   "activation": self.activation})
    return config
