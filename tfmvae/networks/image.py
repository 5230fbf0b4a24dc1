"""Convolutional image encoders and decoders (DCGAN-style, Swish by default)."""
import keras
from keras import layers


def downsample_plan(size):
  """Number of stride-2 blocks for a square image side and the final side.

  Halves while the side is even and above 4: 28 -> 14 -> 7 (2 blocks), 32 -> 4
  (3 blocks), 64 -> 4 (4 blocks), 16 -> 4 (2 blocks).

  Raises:
    ValueError: if the side is below 4 or no block can be applied.
  """
  size = int(size)
  if size < 4:
    raise ValueError(f"image side {size} is too small: the conv networks need at least 4 pixels")
  blocks, side = 0, size
  while side % 2 == 0 and side > 4:
    side //= 2
    blocks += 1
  if blocks == 0:
    raise ValueError(
        f"image side {size} cannot be downsampled by the conv networks: use 28, 32, 64 "
        "or another multiple of 16 (any even side above 4 works)")
  return blocks, side


def _check_image_shape(image_shape):
  if len(image_shape) != 3 or image_shape[0] != image_shape[1]:
    raise ValueError(f"image shape must be (side, side, channels); got {tuple(image_shape)}")
  return downsample_plan(image_shape[0])


@keras.saving.register_keras_serializable(package="tfmvae")
class ConvEncoder(keras.layers.Layer):
  """Strided-conv image encoder: x [B, S, S, C] -> features [B, hidden_units].

  Blocks of Conv2D(4x4, stride 2) [+ BatchNorm] + activation, filters doubling
  from `filters` (capped at 8x), then a dense layer.

  Args:
    image_shape: (side, side, channels); side 28, 32, 64 or a multiple of 16.
    filters: filters of the first block.
    hidden_units: size of the output features.
    activation: activation name (Swish as in the MVAE code).
    batch_norm: whether to use BatchNorm after each conv (MVAE CelebA nets do).
  """

  def __init__(self, image_shape, filters=32, hidden_units=512, activation="swish",
               batch_norm=False, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.filters = filters
    self.hidden_units = hidden_units
    self.activation = activation
    self.batch_norm = batch_norm
    blocks, _ = _check_image_shape(self.image_shape)
    self.blocks = []
    for i in range(blocks):
      self.blocks.append(layers.Conv2D(filters * min(2**i, 8), 4, strides=2, padding="same",
                                       use_bias=not batch_norm, name=f"conv{i}"))
      if batch_norm:
        self.blocks.append(layers.BatchNormalization(name=f"bn{i}"))
      self.blocks.append(layers.Activation(activation))
    self.flatten = layers.Flatten()
    self.dense = layers.Dense(hidden_units, activation=activation, name="features")

  def call(self, x, training=None):
    for layer in self.blocks:
      if isinstance(layer, layers.BatchNormalization):
        x = layer(x, training=training)
      else:
        x = layer(x)
    return self.dense(self.flatten(x))

  def get_config(self):
    config = super().get_config()
    config.update({"image_shape": self.image_shape, "filters": self.filters,
                   "hidden_units": self.hidden_units, "activation": self.activation,
                   "batch_norm": self.batch_norm})
    return config


@keras.saving.register_keras_serializable(package="tfmvae")
class ConvDecoder(keras.layers.Layer):
  """Transposed-conv image decoder: z [B, D] -> parameters [B, S, S, C] (float32).

  Dense -> [s0, s0, F] -> Conv2DTranspose(4x4, stride 2) blocks mirroring
  `ConvEncoder` -> Conv2D(3x3) to `image_shape[-1] * params_per_pixel` channels.
  The output layer runs in float32 (mixed-precision safe) and has no activation:
  logits for Bernoulli pixels, means for Gaussian pixels.

  Args:
    image_shape: (side, side, channels).
    filters: filters of the last upsampling block (mirrors the encoder).
    hidden_units: size of the first dense layer.
    activation: activation name.
    batch_norm: BatchNorm after each transposed conv.
  """

  def __init__(self, image_shape, filters=32, hidden_units=512, activation="swish",
               batch_norm=False, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.filters = filters
    self.hidden_units = hidden_units
    self.activation = activation
    self.batch_norm = batch_norm
    blocks, side = _check_image_shape(self.image_shape)
    top = filters * min(2**(blocks - 1), 8)
    self.dense1 = layers.Dense(hidden_units, activation=activation, name="hidden")
    self.dense2 = layers.Dense(side * side * top, activation=activation, name="project")
    self.reshape = layers.Reshape((side, side, top))
    self.blocks = []
    for i in reversed(range(blocks)):
      self.blocks.append(layers.Conv2DTranspose(filters * min(2**i, 8), 4, strides=2,
                                                padding="same", use_bias=not batch_norm,
                                                name=f"deconv{i}"))
      if batch_norm:
        self.blocks.append(layers.BatchNormalization(name=f"bn{i}"))
      self.blocks.append(layers.Activation(activation))
    self.out = layers.Conv2D(self.image_shape[-1], 3, padding="same", dtype="float32",
                             name="params")

  def call(self, z, training=None):
    x = self.reshape(self.dense2(self.dense1(z)))
    for layer in self.blocks:
      if isinstance(layer, layers.BatchNormalization):
        x = layer(x, training=training)
      else:
        x = layer(x)
    return self.out(x)

  def get_config(self):
    config = super().get_config()
    config.update({"image_shape": self.image_shape, "filters": self.filters,
                   "hidden_units": self.hidden_units, "activation": self.activation,
                   "batch_norm": self.batch_norm})
    return config
