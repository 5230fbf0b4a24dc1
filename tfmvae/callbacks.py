"""Keras callbacks: KL warm-up."""
import keras


class KLWarmup(keras.callbacks.Callback):
  """Linear warm-up of the KL weight: beta_t = beta * min(1, t / warmup_steps).

  Reads the model's own step counter (`model.train_steps`, saved with the model and
  in checkpoints), so a resumed run continues the schedule where it stopped.

  Args:
    warmup_steps: steps to reach `beta` (0 disables the warm-up).
    beta: the final KL weight; defaults to the model's `beta`.
  """

  def __init__(self, warmup_steps, beta=None):
    super().__init__()
    self.warmup_steps = int(warmup_steps)
    self.beta = beta

  def _value(self):
    beta = self.model.beta if self.beta is None else self.beta
    if self.warmup_steps <= 0:
      return float(beta)
    step = int(keras.ops.convert_to_numpy(self.model.train_steps))
    return float(beta) * min(1.0, step / self.warmup_steps)

  def on_train_batch_begin(self, batch, logs=None):
    self.model.kl_weight.assign(self._value())

  def on_train_begin(self, logs=None):
    self.model.kl_weight.assign(self._value())
