"""SVG-FP / SVG-LP: shapes, loss terms vs NumPy, fit, predict, save/reload, errors."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae.models.svg import SVG

TINY = dict(image_size=16, g_dim=16, z_dim=4, rnn_size=16, filters=4, n_past=3, seed=1)


def bouncing_squares(batch, steps, size=16, seed=0):
  """A 4x4 bright square bouncing in a dark frame: float32 [B, T, S, S, 1]."""
  rng = np.random.default_rng(seed)
  out = np.zeros((batch, steps, size, size, 1), np.float32)
  for b in range(batch):
    pos, vel = rng.integers(0, size - 4, 2), rng.choice([-2, -1, 1, 2], 2)
    for t in range(steps):
      out[b, t, pos[0]:pos[0] + 4, pos[1]:pos[1] + 4] = 1.0
      for k in range(2):
        if not 0 <= pos[k] + vel[k] <= size - 4:
          vel[k] = -vel[k]
        pos[k] += vel[k]
  return out


def _np_kl(ql, qs, pl, ps):
  return np.sum(np.log(ps / qs) + (qs**2 + (ql - pl)**2) / (2 * ps**2) - 0.5, axis=-1)


@pytest.fixture(scope="module")
def lp_model():
  model = SVG(prior="learned", **TINY)
  model.compile()
  return model


def test_defaults_are_the_paper_config():
  cfg = SVG().get_config()
  expected = dict(prior="learned", image_size=64, channels=1, g_dim=128, z_dim=10,
                  rnn_size=256, predictor_layers=2, posterior_layers=1, prior_layers=1,
                  beta=1e-4, n_past=5, n_future=10, skip=True)
  assert {k: cfg[k] for k in expected} == expected


def test_terms_match_numpy(lp_model):
  x = bouncing_squares(2, 5)
  terms = lp_model.compute_terms(tf.constant(x), use_mean=True)
  pred = terms["prediction"].numpy()
  assert pred.shape == (2, 4, 16, 16, 1)
  mse = ((pred.astype(np.float64) - x[:, 1:])**2).mean(axis=(2, 3, 4))
  np.testing.assert_allclose(terms["mse"], mse, rtol=1e-5)  # float32 pixel means
  (ql, qs), (pl, ps) = terms["posterior"], terms["prior"]
  kl = _np_kl(*(np.float64(v) for v in (ql, qs, pl, ps)))
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(terms["loss"], (mse + 1e-4 * kl).sum(axis=1), rtol=1e-5)
  np.testing.assert_allclose(lp_model(x), pred, atol=1e-6)


def test_fixed_prior_is_standard_normal():
  model = SVG(prior="fixed", **TINY)
  assert not hasattr(model, "prior_rnn")
  assert len(model.weights) < len(SVG(prior="learned", **TINY).weights)
  terms = model.compute_terms(tf.constant(bouncing_squares(2, 4)))
  pl, ps = terms["prior"]
  np.testing.assert_array_equal(pl, 0.0)
  np.testing.assert_array_equal(ps, 1.0)
  (ql, qs) = terms["posterior"]
  np.testing.assert_allclose(terms["kl"], _np_kl(np.float64(ql), np.float64(qs), 0.0, 1.0),
                             rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("prior", ["learned", "fixed"])
def test_train_steps_decrease_loss(prior):
  # Eager steps (the compiled path is covered below): a cheap optimization check.
  model = SVG(prior=prior, **TINY)
  model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
  x = tf.constant(bouncing_squares(4, 5))
  losses = [float(model.train_step(x)["loss"]) for _ in range(6)]
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0]


def test_compiled_fit_with_dict_dataset(lp_model):
  ds = tf.data.Dataset.from_tensor_slices({"frames": bouncing_squares(4, 6)}).batch(2)
  hist = lp_model.fit(ds, epochs=1, verbose=0, shuffle=False).history  # 2 compiled steps
  assert set(hist) == {"loss", "mse", "kl"}
  assert np.isfinite(hist["loss"][0]) and hist["mse"][0] > 0


def test_variable_sequence_lengths_one_graph(lp_model):
  lp_model.optimizer.build(lp_model.trainable_variables)  # no variable creation in the trace
  step = tf.function(lp_model.train_step,
                     input_signature=[tf.TensorSpec([None, None, 16, 16, 1], tf.float32)])
  out6 = step(tf.constant(bouncing_squares(2, 6)))
  out8 = step(tf.constant(bouncing_squares(3, 8, seed=1)))
  assert step.experimental_get_tracing_count() == 1  # T is not part of the graph
  assert np.isfinite(out6["loss"]) and np.isfinite(out8["loss"])


def test_predict_shapes_and_seed_determinism(lp_model):
  ctx = bouncing_squares(2, 3)
  a = lp_model.predict(ctx, 4, num_samples=3, seed=7)
  assert a.shape == (2, 3, 4, 16, 16, 1)
  np.testing.assert_array_equal(a, lp_model.predict(ctx, 4, num_samples=3, seed=7))
  # SVG's N(0, 0.02) init makes an untrained model nearly ignore z; Keras' does not.
  glorot = SVG(prior="learned", initialization="keras", **TINY)
  c = glorot.predict(ctx, 4, num_samples=3, seed=7)
  assert not np.allclose(c, glorot.predict(ctx, 4, num_samples=3, seed=8))
  b = lp_model.predict(bouncing_squares(1, 5), 6, num_samples=2, seed=[1, 2])
  assert b.shape == (1, 2, 6, 16, 16, 1)
  assert lp_model._rollout.experimental_get_tracing_count() == 1  # lengths are dynamic
  assert float(tf.reduce_min(a)) >= 0 and float(tf.reduce_max(a)) <= 1


def test_save_reload_same_outputs(lp_model, tmp_path):
  path = str(tmp_path / "svg.keras")
  lp_model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, SVG) and loaded.get_config() == lp_model.get_config()
  ctx = bouncing_squares(2, 4)
  np.testing.assert_allclose(loaded.predict(ctx, 3, num_samples=2, seed=3),
                             lp_model.predict(ctx, 3, num_samples=2, seed=3), atol=1e-6)
  np.testing.assert_allclose(loaded(ctx), lp_model(ctx), atol=1e-6)
  assert loaded.optimizer is not None


def test_bad_inputs_name_the_problem(lp_model):
  with pytest.raises(ValueError, match="frame size 32x32"):
    lp_model.predict(np.zeros((1, 3, 32, 32, 1), np.float32), 2)
  with pytest.raises(ValueError, match="3 channels"):
    lp_model.predict(np.zeros((1, 3, 16, 16, 3), np.float32), 2)
  with pytest.raises(ValueError, match="1 frames, at least 2"):
    lp_model.predict(np.zeros((1, 1, 16, 16, 1), np.float32), 2)
  with pytest.raises(ValueError, match="batch, time"):
    lp_model.predict(np.zeros((3, 16, 16, 1), np.float32), 2)
  with pytest.raises(ValueError, match="num_future"):
    lp_model.predict(np.zeros((1, 3, 16, 16, 1), np.float32), 0)
  with pytest.raises(ValueError, match="frame size"):
    lp_model.train_step(tf.zeros((2, 4, 8, 8, 1)))
  with pytest.raises(ValueError, match="'frames' key"):
    lp_model.train_step({"video": tf.zeros((2, 4, 16, 16, 1))})
  with pytest.raises(ValueError, match="prior"):
    SVG(prior="gaussian")
