"""Makes `tf.train.Checkpoint(model=...)` see every variable of a Keras 3 model.

tf.train.Checkpoint follows direct trackable attributes only: layers kept in Python
lists (encoders, decoders, convs inside nets) are invisible to it, so BatchNorm
statistics and seed-generator state would silently not be saved, and trainable
weights only through the optimizer's references. These helpers expose every model
variable by its path.
"""


def add_variable_children(model, children):
  """Adds each of `model.variables` to a `_trackable_children` dict (in place).

  Names are "variable:<path without the model name>", made unique in
  `model.variables` order; existing entries are kept.
  """
  seen = set(children)
  prefix = model.name + "/"
  for v in model.variables:
    path = v.path[len(prefix):] if v.path.startswith(prefix) else v.path
    name = "variable:" + path.replace("/", ".")
    while name in seen:
      if children.get(name) is v:
        break
      name += "_"
    seen.add(name)
    children.setdefault(name, v)
  return children


class CheckpointAllVariables:
  """Mixin for keras.Model subclasses: checkpoints include every variable."""

  def _trackable_children(self, save_type="checkpoint", **kwargs):
    children = super()._trackable_children(save_type, **kwargs)
    if save_type == "checkpoint":
      add_variable_children(self, children)
    return children
