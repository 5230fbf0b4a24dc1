"""Dense head producing a diagonal Gaussian expert (loc, scale) in float32."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmvae")
class GaussianHead(keras.layers.Layer):
  """Maps features to an expert's (loc, scale), always in float32.

  scale = exp(0.5 * clip(logvar, min_logvar, max_logvar)), the MVAE
  parameterization with a clip that keeps exp finite under any input.

  Args:
    latent_dim: size of z.
    min_logvar, max_logvar: clip range of the log-variance; both None: no clip
      (SVG's heads).
    kernel_initializer: initializer of both Dense kernels (biases start at 0).

  Call arguments:
    features: [..., features].

  Returns:
    (loc, scale), each [..., latent_dim] float32.
  """

  def __init__(self, latent_dim, min_logvar=-12.0, max_logvar=8.0,
               kernel_initializer="glorot_uniform", **kwargs):
    kwargs.setdefault("dtype", "float32")
    super().__init__(**kwargs)
    if (min_logvar is None) != (max_logvar is None):
      raise ValueError("min_logvar and max_logvar must both be set or both be None, got "
                       f"{min_logvar!r} and {max_logvar!r}")
    self.latent_dim = latent_dim
    self.min_logvar = min_logvar
    self.max_logvar = max_logvar
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.loc_layer = keras.layers.Dense(latent_dim, dtype="float32", name="loc",
                                        kernel_initializer=kernel_initializer)
    self.logvar_layer = keras.layers.Dense(latent_dim, dtype="float32", name="logvar",
                                           kernel_initializer=kernel_initializer)

  def build(self, input_shape):
    self.loc_layer.build(input_shape)
    self.logvar_layer.build(input_shape)

  def call(self, features):
    features = ops.cast(features, "float32")
    loc = self.loc_layer(features)
    logvar = self.logvar_layer(features)
    if self.min_logvar is not None:
      logvar = ops.clip(logvar, self.min_logvar, self.max_logvar)
    return loc, ops.exp(0.5 * logvar)

  def compute_output_shape(self, input_shape):
    shape = tuple(input_shape[:-1]) + (self.latent_dim,)
    return shape, shape

  def get_config(self):
    config = super().get_config()
    config.update({"latent_dim": self.latent_dim, "min_logvar": self.min_logvar,
                   "max_logvar": self.max_logvar,
                   "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)})
    return config
