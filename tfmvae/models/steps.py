"""train_step / test_step shared by the one-optimizer models (MVAE, SVG, VideoMVAE)."""
import tensorflow as tf

from tfmvae import objectives


class SingleOptimizerSteps:
  """Mixin for keras.Model subclasses trained by one optimizer under `fit`.

  The model provides `compute_terms(inputs, training)` returning a dict whose
  "loss" is the per-example objective [B], and `_update_trackers(terms)` returning
  the logs; it may override `step_inputs(data)` to validate / unpack a batch.
  The loss is averaged over the global batch (`objectives.average_loss`: correct
  under tf.distribute, where Keras 3 optimizers sum replica gradients) and scaled
  for mixed precision; a `train_steps` counter, when the model has one, is
  incremented.
  """

  def step_inputs(self, data):
    return data

  def train_step(self, data):
    inputs = self.step_inputs(data)
    with tf.GradientTape() as tape:
      terms = self.compute_terms(inputs, training=True)
      scaled = self.optimizer.scale_loss(objectives.average_loss(terms["loss"]))
    variables = self.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
    if hasattr(self, "train_steps"):
      self.train_steps.assign_add(1)
    return self._update_trackers(terms)

  def test_step(self, data):
    return self._update_trackers(self.compute_terms(self.step_inputs(data), training=False))
