"""VideoMVAE (Method I): PoE/KL/likelihood terms vs NumPy, fit, predict, reload, errors."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae.models.video_mvae import VideoMVAE

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


def _np_poe(locs, scales, prior_loc, prior_scale, eps=1e-8):
  prec = [1.0 / (prior_scale**2 + eps)] + [1.0 / (s**2 + eps) for s in scales]
  mus = [prior_loc] + list(locs)
  var = 1.0 / sum(prec)
  return var * sum(p * m for p, m in zip(prec, mus)), np.sqrt(var)


def _np_kl(ql, qs, pl, ps):
  return np.sum(np.log(ps / qs) + (qs**2 + (ql - pl)**2) / (2 * ps**2) - 0.5, axis=-1)


def _np_bernoulli_nll(x, logits):
  p = 1.0 / (1.0 + np.exp(-logits))
  return -np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(-3, -2, -1))


@pytest.fixture(scope="module")
def learned():
  model = VideoMVAE(prior="learned", cross_reconstruction=True, **TINY)
  model.compile()
  return model


@pytest.mark.parametrize("prior", ["learned", "fixed"])
def test_terms_match_numpy(prior, learned):
  model = learned if prior == "learned" else VideoMVAE(prior="fixed", beta=0.5, **TINY)
  x = bouncing_squares(2, 4)
  t = {k: v for k, v in model.compute_terms(tf.constant(x), use_mean=True).items()}
  f64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
  (la, sa), (lb, sb) = (map(f64, t["experts"]["a"]), map(f64, t["experts"]["b"]))
  pl, ps = map(f64, t["prior"])
  if prior == "fixed":
    np.testing.assert_array_equal(pl, 0.0)
    np.testing.assert_array_equal(ps, 1.0)
  expected = {"ab": _np_poe([la, lb], [sa, sb], pl, ps), "a": _np_poe([la], [sa], pl, ps),
              "b": _np_poe([lb], [sb], pl, ps)}
  loss = 0.0
  for s, (el, es) in expected.items():
    ql, qs = t["posterior"][s]
    # float32 log-space PoE vs float64 direct formula.
    np.testing.assert_allclose(ql, el, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(qs, es, rtol=1e-4)
    kl = _np_kl(el, es, pl, ps).sum(axis=1)
    np.testing.assert_allclose(t["kl"][s], kl, rtol=1e-3, atol=1e-4)
    nll = sum(_np_bernoulli_nll(x[:, :-1] if m == "a" else x[:, 1:], f64(lg)).sum(axis=1)
              for m, lg in t["logits"][s].items())
    np.testing.assert_allclose(t["nll"][s], nll, rtol=1e-4)  # sums of ~1e3 float32 terms
    loss = loss + nll + model.beta * kl
  np.testing.assert_allclose(t["loss"], loss, rtol=1e-4)
  expected_keys = {"ab": {"a", "b"}, "a": {"a", "b"} if model.cross_reconstruction else {"a"},
                   "b": {"b"}}
  assert {s: set(d) for s, d in t["logits"].items()} == expected_keys
  assert t["recon"]["ab"]["b"].shape == (2, 3, 16, 16, 1)
  np.testing.assert_allclose(model(x), t["recon"]["ab"]["b"], atol=1e-6)


def test_gaussian_likelihood_matches_numpy():
  model = VideoMVAE(prior="fixed", likelihood="gaussian", gaussian_scale=0.2, skip=False,
                    shared_encoder=False, **TINY)
  x = bouncing_squares(1, 3)
  t = model.compute_terms(tf.constant(x), use_mean=True)
  mean = 1.0 / (1.0 + np.exp(-np.float64(t["logits"]["b"]["b"])))
  nll = np.sum(0.5 * ((x[:, 1:] - mean) / 0.2)**2 + np.log(0.2) + 0.5 * np.log(2 * np.pi),
               axis=(2, 3, 4)).sum(axis=1)
  np.testing.assert_allclose(t["nll"]["b"], nll, rtol=1e-4)


@pytest.mark.parametrize("prior", ["learned", "fixed"])
def test_train_steps_decrease_loss(prior):
  model = VideoMVAE(prior=prior, **TINY)
  model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
  x = tf.constant(bouncing_squares(4, 5))
  losses = [float(model.train_step(x)["loss"]) for _ in range(5)]
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0]


def test_compiled_fit_and_variable_lengths(learned):
  # Keras fit with dict batches: eager here to save a ~20 s trace (test_svg runs a
  # compiled fit); the compiled train step is traced just below.
  learned.run_eagerly = True
  ds = tf.data.Dataset.from_tensor_slices({"frames": bouncing_squares(4, 6)}).batch(2)
  hist = learned.fit(ds, epochs=1, verbose=0, shuffle=False).history  # 2 steps
  learned.run_eagerly = False
  assert set(hist) == {"loss", "nll", "kl"} and np.isfinite(hist["loss"][0])
  learned.optimizer.build(learned.trainable_variables)
  step = tf.function(learned.train_step,
                     input_signature=[tf.TensorSpec([None, None, 16, 16, 1], tf.float32)])
  out6 = step(tf.constant(bouncing_squares(2, 6)))
  out8 = step(tf.constant(bouncing_squares(3, 8, seed=1)))
  assert step.experimental_get_tracing_count() == 1  # T is not part of the graph
  assert np.isfinite(out6["loss"]) and np.isfinite(out8["loss"])


def test_predict_shapes_determinism_and_reload(learned, tmp_path):
  ctx = bouncing_squares(2, 3)
  a = learned.predict(ctx, 4, num_samples=3, seed=5)
  assert a.shape == (2, 3, 4, 16, 16, 1)
  np.testing.assert_array_equal(a, learned.predict(ctx, 4, num_samples=3, seed=5))
  assert not np.allclose(a, learned.predict(ctx, 4, num_samples=3, seed=6))
  assert learned.predict(ctx[:, :1], 2, seed=0).shape == (2, 1, 2, 16, 16, 1)
  assert learned._rollout.experimental_get_tracing_count() == 1
  path = str(tmp_path / "video_mvae.keras")
  learned.save(path)
  loaded = keras.models.load_model(path)
  assert loaded.get_config() == learned.get_config()
  np.testing.assert_allclose(loaded.predict(ctx, 4, num_samples=3, seed=5), a, atol=1e-6)


def test_fixed_prior_predict_and_variable_groups():
  model = VideoMVAE(prior="fixed", skip=False, **TINY)
  assert not hasattr(model, "prior_rnn")
  assert model.predict(bouncing_squares(1, 2), 3, num_samples=2, seed=0).shape == (
      1, 2, 3, 16, 16, 1)
  groups = model.variable_groups()
  assert len(groups["encoder"]) + len(groups["decoder"]) == len(model.trainable_variables)
  names = [v.path for v in groups["decoder"]]
  assert all("decoder" in n or "latent" in n for n in names)


@pytest.mark.parametrize("skip_source", ["context", "previous"])
def test_rollout_matches_a_python_loop_with_each_skip_source(skip_source):
  """The compiled rollout equals an eager step-by-step reference built from the
  model's parts: PoE(prior, expert a) per step, decoded with the skips of the last
  context frame ("context") or of the previous, generated frame ("previous")."""
  from tfmvae.layers import product_of_experts
  keras.utils.set_random_seed(0)
  model = VideoMVAE(prior="learned", skip_source=skip_source, **TINY)
  ctx = tf.constant(bouncing_squares(2, 3))
  num_future, seed = 4, tf.constant([7, 1], tf.int32)
  got = model.predict(ctx, num_future, num_samples=1, seed=seed).numpy()[:, 0]

  n, n_ctx = 2, 3
  h = tf.stack([model._encode_a(ctx[:, i], False)[0] for i in range(n_ctx)], axis=1)
  _, a_states = model.rnn_a(h[:, :-1])
  _, p_states = model.prior_rnn(h[:, :-1])
  ctx_skips = model._encode_a(ctx[:, -1], False)[1]
  noise = tf.random.stateless_normal([num_future, n, model.z_dim], seed)
  x, want = ctx[:, -1], []
  for t in range(num_future):
    h_in, skips_in = model._encode_a(x, False)
    loc_a, scale_a = model.head_a(model.rnn_a.step(h_in, a_states)[0])
    a_states = model.rnn_a.step(h_in, a_states)[1]
    feat_p, p_states = model.prior_rnn.step(h_in, p_states)
    q_loc, q_scale = product_of_experts(loc_a[:, None], scale_a[:, None],
                                        prior=model.prior_head(feat_p))
    skips = skips_in if skip_source == "previous" else ctx_skips
    x = tf.sigmoid(model.decode(q_loc + q_scale * noise[t], skips, "b"))
    want.append(x.numpy())
  # float32, same ops in a different (graph vs eager) order.
  np.testing.assert_allclose(got, np.stack(want, axis=1), atol=1e-5)
  # The two rules differ after the first generated frame (and only then).
  other = VideoMVAE(prior="learned", skip_source="context" if skip_source == "previous"
                    else "previous", **TINY)
  other.set_weights(model.get_weights())
  alt = other.predict(ctx, num_future, num_samples=1, seed=seed).numpy()[:, 0]
  np.testing.assert_allclose(alt[:, 0], got[:, 0], atol=1e-6)
  assert np.abs(alt[:, 1:] - got[:, 1:]).max() > 1e-4


def test_skip_source_training_index():
  assert VideoMVAE(skip_source="previous", **TINY)._skip_index(6).numpy().tolist() == [
      0, 1, 2, 3, 4, 5]
  assert VideoMVAE(skip_source="context", **TINY)._skip_index(6).numpy().tolist() == [
      0, 1, 2, 2, 2, 2]  # n_past = 3: the last context frame is x_2


def test_bad_inputs_name_the_problem(learned):
  with pytest.raises(ValueError, match="frame size 32x32"):
    learned.predict(np.zeros((1, 3, 32, 32, 1), np.float32), 2)
  with pytest.raises(ValueError, match="2 channels"):
    learned.train_step(tf.zeros((2, 4, 16, 16, 2)))
  with pytest.raises(ValueError, match="0 frames, at least 1"):
    learned.predict(np.zeros((1, 0, 16, 16, 1), np.float32), 2)
  with pytest.raises(ValueError, match="1 frames, at least 2"):
    learned.train_step(tf.zeros((2, 1, 16, 16, 1)))
  with pytest.raises(ValueError, match="likelihood"):
    VideoMVAE(likelihood="laplace")
  with pytest.raises(ValueError, match="skip_source"):
    VideoMVAE(skip_source="first")
