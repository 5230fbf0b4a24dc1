"""An LSTM cell with PyTorch's parameterization, for exact ports of PyTorch models."""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmvae")
class PyTorchLSTMCell(keras.layers.Layer):
  """`torch.nn.LSTMCell` as a Keras cell: two biases, PyTorch's init.

  Math (gates in PyTorch's and Keras' order i, f, g, o):
      [i, f, g, o] = x W_ih + h U_hh + b_ih + b_hh
      c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c')

  `keras.layers.LSTMCell` computes the same function with one bias. The two
  biases matter in training: Adam updates each one by about lr, so their sum moves
  twice as fast as a single bias would; a port that trains like the PyTorch model
  needs both. Every weight starts U(-k, k), k = 1 / sqrt(units), as PyTorch's.

  Args:
    units: hidden size H.

  Call arguments:
    inputs: [B, F].
    states: [h, c], each [B, H].

  Returns:
    (h', [h', c']).
  """

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.state_size = [units, units]
    self.output_size = units

  def build(self, input_shape):
    limit = 1.0 / math.sqrt(self.units)
    init = keras.initializers.RandomUniform(-limit, limit)
    self.kernel = self.add_weight(shape=(input_shape[-1], 4 * self.units), initializer=init,
                                  name="kernel")
    self.recurrent_kernel = self.add_weight(shape=(self.units, 4 * self.units),
                                            initializer=init, name="recurrent_kernel")
    self.bias_ih = self.add_weight(shape=(4 * self.units,), initializer=init, name="bias_ih")
    self.bias_hh = self.add_weight(shape=(4 * self.units,), initializer=init, name="bias_hh")

  def call(self, inputs, states, training=False):
    h, c = states
    z = (ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel)
         + self.bias_ih + self.bias_hh)
    i, f, g, o = ops.split(z, 4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    h = ops.sigmoid(o) * ops.tanh(c)
    return h, [h, c]

  def get_config(self):
    config = super().get_config()
    config["units"] = self.units
    return config
