"""Shared test helpers: round trips every layer/model test goes through."""
import os

import keras
import numpy as np


def assert_config_roundtrip(obj):
  """from_config(get_config()) rebuilds an object with the same config."""
  clone = obj.__class__.from_config(obj.get_config())
  assert clone.get_config() == obj.get_config()
  return clone


def assert_keras_reload(model, tmp_path, fn, atol=1e-6):
  """Saves `model` as .keras, reloads it, and checks `fn(model)` is unchanged.

  `fn` maps a model to an array or a dict of arrays. Returns the reloaded model.
  """
  path = os.path.join(str(tmp_path), "model.keras")
  model.save(path)
  reloaded = keras.models.load_model(path)
  before, after = fn(model), fn(reloaded)
  if isinstance(before, dict):
    assert set(before) == set(after)
    for key in before:
      np.testing.assert_allclose(np.asarray(after[key]), np.asarray(before[key]), atol=atol,
                                 err_msg=f"output {key!r} changed after reload")
  else:
    np.testing.assert_allclose(np.asarray(after), np.asarray(before), atol=atol)
  return reloaded


def variables_by_path(model):
  """{variable path: numpy value} for every variable of a model."""
  return {v.path: np.array(v.numpy()) for v in model.variables}
