"""Optimizers with the update rules of other frameworks, for exact ports."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmvae")
class TorchAdam(keras.optimizers.Adam):
  """Adam with PyTorch's epsilon placement (`torch.optim.Adam`), default epsilon 1e-8.

  Both frameworks keep m_t = b1 m + (1 - b1) g and v_t = b2 v + (1 - b2) g**2. Keras
  updates w -= lr sqrt(1 - b2**t) / (1 - b1**t) * m_t / (sqrt(v_t) + eps), PyTorch
  w -= lr / (1 - b1**t) * m_t / (sqrt(v_t) / sqrt(1 - b2**t) + eps): the same rule with
  eps scaled by 1 / sqrt(1 - b2**t) (about 32x at the first step). The difference
  matters where gradients are as small as eps, which a port of a PyTorch model
  trained with Adam must reproduce. `amsgrad` is not supported.

  Args:
    learning_rate, beta_1, beta_2, epsilon: as `torch.optim.Adam` (lr, betas, eps).
    **kwargs: other `keras.optimizers.Adam` arguments.
  """

  def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
               name="torch_adam", **kwargs):
    if kwargs.get("amsgrad"):
      raise ValueError("TorchAdam does not support amsgrad")
    super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                     epsilon=epsilon, name=name, **kwargs)

  def update_step(self, gradient, variable, learning_rate):
    lr = ops.cast(learning_rate, variable.dtype)
    gradient = ops.cast(gradient, variable.dtype)
    step = ops.cast(self.iterations + 1, variable.dtype)
    bias_correction1 = 1 - ops.power(ops.cast(self.beta_1, variable.dtype), step)
    bias_correction2 = 1 - ops.power(ops.cast(self.beta_2, variable.dtype), step)
    m = self._momentums[self._get_variable_index(variable)]
    v = self._velocities[self._get_variable_index(variable)]
    self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
    self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
    denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bias_correction2)), self.epsilon)
    self.assign_sub(variable, ops.divide(ops.multiply(m, lr / bias_correction1), denominator))

  def get_config(self):
    config = super().get_config()
    config.pop("amsgrad", None)
    return config
