"""Frame networks for video models: DCGAN encoder/decoder with skips, LSTM stacks.

`FrameEncoder` / `FrameDecoder` follow SVG's `dcgan_64` (Denton & Fergus 2018,
edenton/svg models/dcgan_64.py), generalized to any square frame whose side is a
multiple of 16 (num_blocks = log2(image_size / 4), 4 at 64x64, 3 at 32x32, 2 at
16x16):

    encoder: x [B, S, S, C]
      -> num_blocks x (conv 4x4 stride 2 "same", BatchNorm, LeakyReLU 0.2)
         with filters * 2**i channels (capped at filters * 8); each block's output
         is a skip feature map, [B, S / 2**(i+1), S / 2**(i+1), F_i]
      -> conv 4x4 "valid" on the 4x4 map -> [B, 1, 1, g_dim], BatchNorm, tanh
      -> h [B, g_dim]
    decoder: h [B, g_dim]
      -> transposed conv 4x4 "valid" -> [B, 4, 4, F_last], BatchNorm, LeakyReLU
      -> for each deeper-to-shallower block: concat skip (if skip=True),
         transposed conv 4x4 stride 2, BatchNorm, LeakyReLU
      -> concat first skip, transposed conv 4x4 stride 2 to C channels, sigmoid.

Weights are initialized as SVG's `init_weights`: convolutions N(0, 0.02), BatchNorm
gamma N(1, 0.02). BatchNorm momentum 0.9 (PyTorch's 0.1 running-average rate);
epsilon, momentum and the moving-variance convention are arguments
(`batchnorm_epsilon`, `batchnorm_momentum`, `unbiased_moving_variance`; PyTorch's
BatchNorm2d is 1e-5, 0.9, True). Every BatchNorm is a `GroupedBatchNormalization`,
so a caller that encodes a [B * T] batch of frames can normalize each time step
with its own statistics (`groups=T`), as a model run frame by frame does.

`StackedLSTM` is SVG's `lstm` / `gaussian_lstm` trunk (Dense embedding, a stack of
LSTM cells, optional output Dense) with a compiled time loop (`tf.while_loop`,
sequence length dynamic) and a single-step method for autoregressive rollouts.
"""
import math

import keras
import tensorflow as tf

from tfmvae.layers.batch_norm import GroupedBatchNormalization
from tfmvae.layers.lstm_cell import PyTorchLSTMCell

_CONV_INIT = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}
_GAMMA_INIT = {"class_name": "RandomNormal", "config": {"mean": 1.0, "stddev": 0.02}}
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-3


INITIALIZATIONS = ("keras", "svg")


def dense_initializer(initialization):
  """Dense kernel initializer of an initialization scheme ("keras" | "svg")."""
  return _CONV_INIT if initialization == "svg" else "glorot_uniform"


def _batch_norm(name, epsilon, momentum, unbiased):
  return GroupedBatchNormalization(
      epsilon=epsilon, momentum=momentum, unbiased_moving_variance=unbiased,
      gamma_initializer=_GAMMA_INIT, name=name)


def _bn_options(layer):
  return {"batchnorm_epsilon": layer.batchnorm_epsilon,
          "batchnorm_momentum": layer.batchnorm_momentum,
          "unbiased_moving_variance": layer.unbiased_moving_variance}


def num_frame_blocks(image_size):
  """Number of stride-2 blocks for a square frame side: log2(image_size / 4).

  Args:
    image_size: frame side in pixels; a positive multiple of 16 that is 4 * 2**k.

  Returns:
    int, the number of blocks (4 for 64, 3 for 32, 2 for 16).

  Raises:
    ValueError: naming the size when it is not a multiple of 16 (or not 4 * 2**k).
  """
  if (not isinstance(image_size, int) or image_size < 16 or image_size % 16
      or (image_size // 4) & (image_size // 4 - 1)):
    raise ValueError(
        f"image_size={image_size!r} is not supported: frame networks need a square "
        "frame whose side is a multiple of 16 of the form 4 * 2**k (16, 32, 64, 128, ...).")
  return int(round(math.log2(image_size // 4)))


def _block_filters(filters, num_blocks):
  return [filters * min(2**i, 8) for i in range(num_blocks)]


@keras.saving.register_keras_serializable(package="tfmvae")
class FrameEncoder(keras.layers.Layer):
  """DCGAN frame encoder with skip feature maps (SVG's dcgan_64 encoder).

  Math/shapes: x [B, S, S, C] -> num_blocks = log2(S / 4) blocks of
  (conv 4x4 stride 2, BatchNorm, LeakyReLU(0.2)) -> conv 4x4 valid -> BatchNorm ->
  tanh -> h [B, g_dim] in (-1, 1). Block i (0-based) outputs
  [B, S / 2**(i+1), S / 2**(i+1), filters * min(2**i, 8)].

  Args:
    g_dim: size of the frame code h.
    image_size: frame side S (a multiple of 16).
    channels: frame channels C.
    filters: channels of the first block (64 in SVG).
    batchnorm_epsilon, batchnorm_momentum, unbiased_moving_variance: BatchNorm
      options (module docstring).

  Call arguments:
    x: frames [B, S, S, C] float in [0, 1].
    training: BatchNorm mode.
    groups: BatchNorm statistics per group of frames (frame i in group i mod G);
      None: over the whole batch.
    batch_statistics: normalize with batch statistics (default: `training`);
      True with training=False leaves the moving averages untouched.
    update_counts: [G] moving-average updates per group (default one each).

  Returns:
    (h, skips): h [B, g_dim]; skips a list of num_blocks feature maps, shallowest
    (largest) first.

  Example:
    >>> enc = FrameEncoder(128, image_size=64)
    >>> h, skips = enc(tf.zeros([2, 64, 64, 1]))  # h: [2, 128]; 4 skips

  Reference:
    Denton & Fergus, "Stochastic Video Generation with a Learned Prior", ICML 2018.
  """

  def __init__(self, g_dim, image_size=64, channels=1, filters=64,
               batchnorm_epsilon=_BN_EPSILON, batchnorm_momentum=_BN_MOMENTUM,
               unbiased_moving_variance=False, **kwargs):
    super().__init__(**kwargs)
    self.num_blocks = num_frame_blocks(image_size)
    self.g_dim = g_dim
    self.image_size = image_size
    self.channels = channels
    self.filters = filters
    self.batchnorm_epsilon = batchnorm_epsilon
    self.batchnorm_momentum = batchnorm_momentum
    self.unbiased_moving_variance = unbiased_moving_variance
    bn = (batchnorm_epsilon, batchnorm_momentum, unbiased_moving_variance)
    self.convs, self.norms = [], []
    for i, f in enumerate(_block_filters(filters, self.num_blocks)):
      self.convs.append(keras.layers.Conv2D(
          f, 4, strides=2, padding="same", kernel_initializer=_CONV_INIT, name=f"conv_{i}"))
      self.norms.append(_batch_norm(f"bn_{i}", *bn))
    self.out_conv = keras.layers.Conv2D(
        g_dim, 4, padding="valid", kernel_initializer=_CONV_INIT, name="conv_out")
    self.out_norm = _batch_norm("bn_out", *bn)

  def build(self, input_shape):
    shape = (None, self.image_size, self.image_size, self.channels)
    for conv, norm in zip(self.convs, self.norms):
      conv.build(shape)
      shape = conv.compute_output_shape(shape)
      norm.build(shape)
    self.out_conv.build(shape)
    shape = self.out_conv.compute_output_shape(shape)
    self.out_norm.build(shape)

  def call(self, x, training=False, groups=None, batch_statistics=None, update_counts=None):
    bn = dict(training=training, groups=groups, use_batch_statistics=batch_statistics,
              update_counts=update_counts)
    skips = []
    for conv, norm in zip(self.convs, self.norms):
      x = keras.ops.leaky_relu(norm(conv(x), **bn), 0.2)
      skips.append(x)
    h = keras.ops.tanh(self.out_norm(self.out_conv(x), **bn))
    return keras.ops.reshape(h, (-1, self.g_dim)), skips

  def skip_shapes(self):
    """Per-example shapes [(S_i, S_i, F_i)] of the skip maps, shallowest first."""
    return [(self.image_size // 2**(i + 1), self.image_size // 2**(i + 1), f)
            for i, f in enumerate(_block_filters(self.filters, self.num_blocks))]

  def compute_output_shape(self, input_shape):
    batch = input_shape[0]
    return (batch, self.g_dim), [(batch,) + s for s in self.skip_shapes()]

  def get_config(self):
    config = super().get_config()
    config.update({"g_dim": self.g_dim, "image_size": self.image_size,
                   "channels": self.channels, "filters": self.filters, **_bn_options(self)})
    return config


@keras.saving.register_keras_serializable(package="tfmvae")
class FrameDecoder(keras.layers.Layer):
  """DCGAN frame decoder with skip connections (SVG's dcgan_64 decoder).

  Math/shapes: h [B, g_dim] -> [B, 1, 1, g_dim] -> transposed conv 4x4 valid ->
  [B, 4, 4, F_{n-1}] -> BatchNorm, LeakyReLU -> for i = n-1 .. 1: concat(skip_i)
  (skip=True) -> transposed conv 4x4 stride 2 to F_{i-1} -> BatchNorm, LeakyReLU ->
  concat(skip_0) -> transposed conv 4x4 stride 2 to C -> sigmoid (or raw logits).

  Args:
    image_size: frame side S (a multiple of 16).
    channels: frame channels C.
    filters: channels of the encoder's first block (64 in SVG).
    skip: concatenate the encoder's skip maps (content from a reference frame).
    output_activation: "sigmoid" (frames in [0, 1], default) or None (logits).
    batchnorm_epsilon, batchnorm_momentum, unbiased_moving_variance: BatchNorm
      options (module docstring).

  Call arguments:
    h: [B, g_dim] code.
    skips: list of num_blocks maps as returned by `FrameEncoder` (ignored, may be
      None, when skip=False).
    training: BatchNorm mode.
    groups, batch_statistics, update_counts: as `FrameEncoder`.

  Returns:
    frames [B, S, S, C] (in [0, 1] with the sigmoid; logits otherwise).

  Example:
    >>> dec = FrameDecoder(image_size=64)
    >>> x = dec(h, skips)  # [2, 64, 64, 1]
  """

  def __init__(self, image_size=64, channels=1, filters=64, skip=True,
               output_activation="sigmoid", batchnorm_epsilon=_BN_EPSILON,
               batchnorm_momentum=_BN_MOMENTUM, unbiased_moving_variance=False, **kwargs):
    super().__init__(**kwargs)
    if output_activation not in ("sigmoid", None):
      raise ValueError(f"output_activation must be 'sigmoid' or None, got {output_activation!r}")
    self.num_blocks = num_frame_blocks(image_size)
    self.image_size = image_size
    self.channels = channels
    self.filters = filters
    self.skip = skip
    self.output_activation = output_activation
    self.batchnorm_epsilon = batchnorm_epsilon
    self.batchnorm_momentum = batchnorm_momentum
    self.unbiased_moving_variance = unbiased_moving_variance
    bn = (batchnorm_epsilon, batchnorm_momentum, unbiased_moving_variance)
    block_filters = _block_filters(filters, self.num_blocks)
    self.in_conv = keras.layers.Conv2DTranspose(
        block_filters[-1], 4, padding="valid", kernel_initializer=_CONV_INIT, name="upconv_in")
    self.in_norm = _batch_norm("bn_in", *bn)
    self.convs, self.norms = [], []
    for j, i in enumerate(range(self.num_blocks - 1, 0, -1)):
      self.convs.append(keras.layers.Conv2DTranspose(
          block_filters[i - 1], 4, strides=2, padding="same", kernel_initializer=_CONV_INIT,
          name=f"upconv_{j}"))
      self.norms.append(_batch_norm(f"bn_{j}", *bn))
    self.out_conv = keras.layers.Conv2DTranspose(
        channels, 4, strides=2, padding="same", kernel_initializer=_CONV_INIT, name="upconv_out")

  def build(self, input_shape=None):
    block_filters = _block_filters(self.filters, self.num_blocks)
    g_dim = None if input_shape is None else input_shape[-1]
    if g_dim is None:
      raise ValueError("FrameDecoder.build needs the code size: build((None, g_dim)).")
    self.in_conv.build((None, 1, 1, g_dim))
    self.in_norm.build((None, 4, 4, block_filters[-1]))
    size, ch = 4, block_filters[-1]
    for conv, norm, i in zip(self.convs, self.norms, range(self.num_blocks - 1, 0, -1)):
      in_ch = ch + (block_filters[i] if self.skip else 0)
      conv.build((None, size, size, in_ch))
      size, ch = size * 2, block_filters[i - 1]
      norm.build((None, size, size, ch))
    self.out_conv.build((None, size, size, ch + (block_filters[0] if self.skip else 0)))

  def call(self, h, skips=None, training=False, groups=None, batch_statistics=None,
           update_counts=None):
    if self.skip and (skips is None or len(skips) != self.num_blocks):
      raise ValueError(f"FrameDecoder(skip=True) needs {self.num_blocks} skip maps, got "
                       f"{None if skips is None else len(skips)}.")
    bn = dict(training=training, groups=groups, use_batch_statistics=batch_statistics,
              update_counts=update_counts)
    x = keras.ops.reshape(h, (-1, 1, 1, keras.ops.shape(h)[-1]))
    x = keras.ops.leaky_relu(self.in_norm(self.in_conv(x), **bn), 0.2)
    for conv, norm, i in zip(self.convs, self.norms, range(self.num_blocks - 1, 0, -1)):
      if self.skip:
        x = keras.ops.concatenate([x, keras.ops.cast(skips[i], x.dtype)], axis=-1)
      x = keras.ops.leaky_relu(norm(conv(x), **bn), 0.2)
    if self.skip:
      x = keras.ops.concatenate([x, keras.ops.cast(skips[0], x.dtype)], axis=-1)
    x = self.out_conv(x)
    return keras.ops.sigmoid(x) if self.output_activation == "sigmoid" else x

  def compute_output_shape(self, input_shape, skips_shape=None):
    return (input_shape[0], self.image_size, self.image_size, self.channels)

  def get_config(self):
    config = super().get_config()
    config.update({"image_size": self.image_size, "channels": self.channels,
                   "filters": self.filters, "skip": self.skip,
                   "output_activation": self.output_activation, **_bn_options(self)})
    return config


@keras.saving.register_keras_serializable(package="tfmvae")
class StackedLSTM(keras.layers.Layer):
  """SVG's recurrent trunk: Dense embedding, stacked LSTM cells, optional output.

  Math: e_t = W_e x_t + b_e; (h^1_t, c^1_t) = LSTM_1(e_t, h^1_{t-1}, c^1_{t-1}); ...;
  y_t = act(W_o h^L_t + b_o) when output_dim is set, else y_t = h^L_t.
  The time loop is a `tf.while_loop` over a dynamic number of steps (no Python
  loop per frame; the sequence length is not part of the graph).

  Args:
    hidden_size: LSTM units (256 in SVG).
    num_layers: stacked LSTM cells.
    output_dim: optional size of an output Dense (None: return the top hidden).
    output_activation: activation of the output Dense (SVG's predictor: "tanh").
    initialization: "keras" (`keras.layers.LSTMCell`, Keras defaults: Glorot
      Dense kernels, LSTM forget bias 1) or "svg" (edenton/svg: Dense kernels
      N(0, 0.02) with zero biases, and PyTorch's LSTMCell, `PyTorchLSTMCell`: two
      biases, every weight U(-k, k), k = 1/sqrt(units)).

  Call arguments:
    inputs: [B, T, F] sequence (T may be 0).
    initial_states: optional list of 2 * num_layers tensors [B, hidden_size]
      (h_1, c_1, h_2, c_2, ...); zeros by default.
    training: unused (no dropout); kept for the Keras call convention.

  Returns:
    (outputs [B, T, output_dim or hidden_size], final_states list).
  """

  def __init__(self, hidden_size=256, num_layers=1, output_dim=None, output_activation=None,
               initialization="keras", **kwargs):
    super().__init__(**kwargs)
    if initialization not in INITIALIZATIONS:
      raise ValueError(f"initialization must be one of {INITIALIZATIONS}, got {initialization!r}")
    self.hidden_size = hidden_size
    self.num_layers = num_layers
    self.output_dim = output_dim
    self.output_activation = output_activation
    self.initialization = initialization
    dense_init = dense_initializer(initialization)
    cell = PyTorchLSTMCell if initialization == "svg" else keras.layers.LSTMCell
    self.embed = keras.layers.Dense(hidden_size, kernel_initializer=dense_init, name="embed")
    self.cells = [cell(hidden_size, name=f"lstm_{i}") for i in range(num_layers)]
    self.out = (keras.layers.Dense(output_dim, activation=output_activation,
                                   kernel_initializer=dense_init, name="out")
                if output_dim is not None else None)

  @property
  def units(self):
    return self.output_dim if self.output_dim is not None else self.hidden_size

  def build(self, input_shape):
    self.embed.build((None, input_shape[-1]))
    for cell in self.cells:
      cell.build((None, self.hidden_size))
    if self.out is not None:
      self.out.build((None, self.hidden_size))

  def initial_state(self, batch_size):
    """Zero states: a list of 2 * num_layers tensors [batch_size, hidden_size]."""
    zeros = tf.zeros(tf.stack([batch_size, self.hidden_size]), self.compute_dtype)
    return [zeros] * (2 * self.num_layers)

  def step(self, x, states):
    """One time step: x [B, F], states list -> (y [B, units], new states list)."""
    h = self.embed(x)
    new_states = []
    for i, cell in enumerate(self.cells):
      h, (hh, cc) = cell(h, [states[2 * i], states[2 * i + 1]])
      new_states += [hh, cc]
    if self.out is not None:
      h = self.out(h)
    return h, new_states

  def call(self, inputs, initial_states=None, training=False):
    inputs = tf.convert_to_tensor(inputs)
    batch, steps = tf.shape(inputs)[0], tf.shape(inputs)[1]
    states = list(initial_states) if initial_states is not None else self.initial_state(batch)
    time_major = tf.transpose(inputs, [1, 0, 2])
    outputs = tf.TensorArray(self.compute_dtype, size=steps, element_shape=None)

    def body(t, outputs, *states):
      y, new_states = self.step(time_major[t], list(states))
      return (t + 1, outputs.write(t, y)) + tuple(new_states)

    # maximum_iterations bounds the gradient's accumulators (XLA needs it).
    loop = tf.while_loop(lambda t, *_: t < steps, body,
                         (tf.constant(0), outputs) + tuple(states), maximum_iterations=steps)
    # [T, B, units]; an empty TensorArray with an unknown batch cannot stack.
    outputs = tf.cond(steps > 0, loop[1].stack,
                      lambda: tf.zeros(tf.stack([0, batch, self.units]), self.compute_dtype))
    outputs = tf.reshape(outputs, [steps, batch, self.units])
    return tf.transpose(outputs, [1, 0, 2]), list(loop[2:])

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[1], self.units)

  def get_config(self):
    config = super().get_config()
    config.update({"hidden_size": self.hidden_size, "num_layers": self.num_layers,
                   "output_dim": self.output_dim, "output_activation": self.output_activation,
                   "initialization": self.initialization})
    return config
