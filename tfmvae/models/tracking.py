"""Makes `tf.train.Checkpoint(model=...)` see every variable of a Keras 3 model.

tf.train.Checkpoint follows direct trackable attributes only: layers kept in Python
lists (encoders, decoders, convs inside nets) are invisible to it, so BatchNorm
statistics and seed-generator state would silently not be saved, and trainable
weights only through the optimizer's references. These helpers expose every model
variable by its path.
"""


def add_variable_children(model, children):
  """Adds each of `model.variables` to a `_trackable_children` dict (in place).

  A variable under the model's scope is named "variable:<path without the model
  name>"; one outside it (e.g. an unnamed SeedGenerator inside a Keras LSTM cell,
  whose path holds a process-global counter such as "seed_generator_53") is named
  by its position among such variables in `model.variables` order, which is stable
  across processes. Existing entries are kept.
  """
  prefix = model.name + "/"
  unscoped = 0
  for v in model.variables:
    if v.path.startswith(prefix):
      name = "variable:" + v.path[len(prefix):].replace("/", ".")
    else:
      name = f"variable:unscoped_{unscoped}"
      unscoped += 1
    while name in children and children[name] is not v:
      name += "_"
    children.setdefault(name, v)
  return children


class CheckpointAllVariables:
  """Mixin for keras.Model subclasses: checkpoints include every variable."""

  def _trackable_children(self, save_type="checkpoint", **kwargs):
    children = super()._trackable_children(save_type, **kwargs)
    if save_type == "checkpoint":
      add_variable_children(self, children)
    return children
