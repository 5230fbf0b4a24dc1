"""MLP encoders and decoders for vectors (labels, attributes) and small images."""
import math

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="tfmvae")
class MLPEncoder(keras.layers.Layer):
  """x [B, ...] -> features [B, hidden_units[-1]] (flattens its input).

  Args:
    hidden_units: sizes of the dense layers (MVAE: 512 with Swish).
    activation: activation name.
  """

  def __init__(self, hidden_units=(512, 512), activation="swish", **kwargs):
    super().__init__(**kwargs)
    self.hidden_units = tuple(hidden_units)
    self.activation = activation
    self.flatten = layers.Flatten()
    self.dense = [layers.Dense(u, activation=activation, name=f"dense{i}")
                  for i, u in enumerate(self.hidden_units)]

  def call(self, x, training=None):
    x = self.flatten(x)
    for layer in self.dense:
      x = layer(x)
    return x

  def get_config(self):
    config = super().get_config()
    config.update({"hidden_units": self.hidden_units, "activation": self.activation})
    return config


@keras.saving.register_keras_serializable(package="tfmvae")
class MLPDecoder(keras.layers.Layer):
  """z [B, D] -> parameters [B, *output_shape] (float32, no output activation).

  Args:
    output_shape: shape of one example's parameters, e.g. (10,) label logits.
    hidden_units: sizes of the hidden dense layers.
    activation: activation name.
  """

  def __init__(self, output_shape, hidden_units=(512, 512), activation="swish", **kwargs):
    super().__init__(**kwargs)
    self.target_shape = tuple(output_shape)
    self.hidden_units = tuple(hidden_units)
    self.activation = activation
    self.dense = [layers.Dense(u, activation=activation, name=f"dense{i}")
                  for i, u in enumerate(self.hidden_units)]
    self.out = layers.Dense(math.prod(self.target_shape), dtype="float32", name="params")
    self.reshape = layers.Reshape(self.target_shape)

  def call(self, z, training=None):
    for layer in self.dense:
      z = layer(z)
    return self.reshape(self.out(z))

  def get_config(self):
    config = super().get_config()
    config.update({"output_shape": self.target_shape, "hidden_units": self.hidden_units,
                   "activation": self.activation})
    return config
