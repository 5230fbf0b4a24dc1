"""MVAE: objective vs. a hand computation, subsets, masks, bad input, round trips."""
import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae import callbacks
from tfmvae import modalities as mods
from tfmvae import objectives
from tfmvae.models import MVAE
from tests import helpers


def tiny_model(**kwargs):
  kwargs.setdefault("latent_dim", 3)
  kwargs.setdefault("seed", 0)
  return MVAE([mods.image(shape=(16, 16, 1), filters=4, hidden_units=(16,)),
               mods.label(4, hidden_units=(8,))], **kwargs)


def tiny_batch(n=6, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.uniform(size=(n, 16, 16, 1)).astype(np.float32),
          "label": np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)],
          "mask": np.ones((n, 2), np.float32)}


# ------------------------------------------------------------------ objective
def _np_bernoulli(x, logits):
  return np.sum(x * logits - np.logaddexp(0.0, logits), axis=tuple(range(1, x.ndim)))


def _np_categorical(y, logits):
  logp = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1,
                                keepdims=True)) - logits.max(-1, keepdims=True)
  return np.sum(y * logp, -1)


def _np_kl_std_normal(mu, sigma):
  return 0.5 * np.sum(sigma**2 + mu**2 - 1.0 - 2.0 * np.log(sigma), -1)


def test_objective_matches_hand_computation(monkeypatch):
  """With the reparameterization noise set to 0 (z = posterior mean), the loss is
  sum over {joint, image, label} of -(sum_i lambda_i m_i log p(x_i|z)) + beta KL,
  recomputed here with NumPy formulas (PoE, Bernoulli, Categorical, Gaussian KL).
  Tolerance: float32 model vs float64 reference, rtol 1e-4."""
  model = tiny_model()
  model.kl_weight.assign(0.7)
  batch = tiny_batch()
  batch["mask"][1, 1] = 0.0  # example 1 has no label
  batch["mask"][2, :] = 0.0  # example 2 has nothing
  monkeypatch.setattr(model, "_normal", lambda shape, seed: tf.zeros(shape))
  terms = model.compute_terms(batch)

  xs, mask = model.parse_inputs(batch)
  loc, scale = (t.numpy().astype(np.float64) for t in model._experts(xs, training=False))
  want = np.zeros(6)
  for subset in ([1, 1], [1, 0], [0, 1]):
    eff = batch["mask"] * np.array(subset, np.float32)
    prec = eff[:, :, None] / (scale**2 + 1e-8)
    var = 1.0 / (1.0 + prec.sum(1))
    mu = var * (prec * loc).sum(1)
    params = model._decode_all(tf.constant(mu, tf.float32), training=False)
    ll_img = _np_bernoulli(batch["image"], params["image"].numpy())
    ll_lab = _np_categorical(batch["label"], params["label"].numpy())
    recon = 1.0 * eff[:, 0] * ll_img + 10.0 * eff[:, 1] * ll_lab
    want += -recon + 0.7 * _np_kl_std_normal(mu, np.sqrt(var))
  np.testing.assert_allclose(terms["loss"], want, rtol=1e-4)
  assert terms["loss"].numpy()[2] == 0.0  # nothing present: no reconstruction, KL 0
  assert terms["kl"].numpy()[2] == 0.0


def test_missing_labels_do_not_train_the_label_decoder():
  model = tiny_model()
  batch = tiny_batch()
  batch["mask"][:, 1] = 0.0
  batch["label"][:] = np.nan  # a missing modality may hold anything
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.compute_terms(batch, training=True)["loss"])
  label_vars = model.decoders[1].trainable_variables + model.encoders[1].trainable_variables
  grads = tape.gradient(loss, label_vars + model.decoders[0].trainable_variables)
  for g in grads[:len(label_vars)]:
    assert g is None or np.all(g.numpy() == 0.0)
  assert any(np.any(g.numpy() != 0) for g in grads[len(label_vars):])
  assert np.isfinite(loss.numpy())


def test_subset_likelihood_all_matches_hand_computation(monkeypatch):
  """subset_likelihood="all": each subset's z (posterior mean here) is scored on
  every present modality, sum over {joint, image, label} of
  -(sum_{i present} lambda_i log p(x_i|z_S)) + beta KL(q(z|X_S)); a subset with no
  present modality contributes nothing. NumPy reference, rtol 1e-4 (float32 vs
  float64). The paper's objective ("own") would leave out the cross terms
  (label scored on q(z|image), image on q(z|label)): the reference tells them apart."""
  model = tiny_model(subset_likelihood="all")
  model.kl_weight.assign(0.7)
  batch = tiny_batch()
  batch["mask"][1, 1] = 0.0  # example 1 has no label: its label-only term is empty
  batch["mask"][2, :] = 0.0  # example 2 has nothing
  monkeypatch.setattr(model, "_normal", lambda shape, seed: tf.zeros(shape))
  terms = model.compute_terms(batch)

  xs, _ = model.parse_inputs(batch)
  loc, scale = (t.numpy().astype(np.float64) for t in model._experts(xs, training=False))
  want, own = np.zeros(6), np.zeros(6)
  for subset in ([1, 1], [1, 0], [0, 1]):
    eff = batch["mask"] * np.array(subset, np.float32)
    prec = eff[:, :, None] / (scale**2 + 1e-8)
    var = 1.0 / (1.0 + prec.sum(1))
    mu = var * (prec * loc).sum(1)
    params = model._decode_all(tf.constant(mu, tf.float32), training=False)
    ll_img = _np_bernoulli(batch["image"], params["image"].numpy())
    ll_lab = _np_categorical(batch["label"], params["label"].numpy())
    nonempty = (eff.sum(1) > 0).astype(np.float64)
    m = batch["mask"]
    kl = 0.7 * _np_kl_std_normal(mu, np.sqrt(var))
    want += -nonempty * (1.0 * m[:, 0] * ll_img + 10.0 * m[:, 1] * ll_lab) + kl
    own += -(1.0 * eff[:, 0] * ll_img + 10.0 * eff[:, 1] * ll_lab) + kl
  np.testing.assert_allclose(terms["loss"], want, rtol=1e-4)
  assert np.all(np.abs(want - own)[[0, 3, 4, 5]] > 1e-3)  # the cross terms matter
  assert terms["loss"].numpy()[2] == 0.0
  # The joint subset is the same under both objectives.
  np.testing.assert_allclose(terms["elbo"], model.compute_terms(batch)["elbo"], rtol=1e-6)


def test_subset_likelihood_all_scores_label_on_image_posterior(monkeypatch):
  """Same weights, noise 0: the label's summed log-likelihood under "all" exceeds
  the paper's ("own") by exactly log p(label | z = mean of q(z|image)), the cross
  term that trains p(label|z) where image -> label prediction evaluates it
  (rtol 1e-4). Bad values are refused; the option survives get_config."""
  batch = tiny_batch()
  own = tiny_model()
  both = MVAE.from_config({**own.get_config(), "subset_likelihood": "all"})
  both.set_weights(own.get_weights())
  assert both.subset_likelihood == "all" and own.subset_likelihood == "own"
  for m in (own, both):
    monkeypatch.setattr(m, "_normal", lambda shape, seed: tf.zeros(shape))
  diff = both.compute_terms(batch)["recon"][1] - own.compute_terms(batch)["recon"][1]
  loc, _ = own.encode({"image": batch["image"]})
  logits = own._decode_all(loc, training=False)["label"].numpy().astype(np.float64)
  np.testing.assert_allclose(diff, _np_categorical(batch["label"], logits), rtol=1e-4)
  assert np.all(diff.numpy() < 0)
  with pytest.raises(ValueError, match="subset_likelihood"):
    tiny_model(subset_likelihood="cross")


# ------------------------------------------------------------------ subsets
def test_fixed_subsets():
  assert objectives.fixed_subsets(1) == [(1,)]
  assert objectives.fixed_subsets(2) == [(1, 1), (1, 0), (0, 1)]
  assert objectives.fixed_subsets(3) == [(1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1)]


def test_random_subsets_are_uniform_over_nonempty():
  draws = objectives.random_subsets(3, 14000, seed=1).numpy().astype(int)
  assert draws.shape == (14000, 3)
  counts = collections.Counter(map(tuple, draws))
  assert set(counts) == set(objectives.all_subsets(3))  # never the empty subset
  # 7 outcomes, 2000 expected each; binomial sd ~41: allow 5 sd.
  for c in counts.values():
    assert abs(c - 2000) < 205


def test_random_subsets_enter_the_loss():
  three = MVAE([mods.image(shape=(16, 16, 1), filters=4, hidden_units=(16,)),
                mods.label(4, hidden_units=(8,)),
                mods.attributes(5, hidden_units=(8,))], latent_dim=3, num_subsets=2, seed=0)
  batch = tiny_batch()
  batch["attributes"] = np.ones((6, 5), np.float32)
  del batch["mask"]
  base = MVAE.from_config({**three.get_config(), "num_subsets": 0})
  base.set_weights(three.get_weights())
  # 4 fixed + 2 random subsets vs 4 fixed: strictly more positive terms.
  assert np.all(three.compute_terms(batch)["loss"].numpy() > 0)
  assert np.mean(three.compute_terms(batch)["loss"]) > np.mean(base.compute_terms(batch)["loss"])


# ------------------------------------------------------------------ bad input
def test_bad_inputs_name_the_problem():
  model = tiny_model()
  batch = tiny_batch()
  with pytest.raises(ValueError, match="modality 'image'.*shape"):
    model.compute_terms({**batch, "image": np.zeros((6, 8, 8, 1), np.float32)})
  with pytest.raises(ValueError, match="mask must be"):
    model.compute_terms({**batch, "mask": np.ones((6, 3), np.float32)})
  with pytest.raises(ValueError, match="all modalities are missing"):
    model.compute_terms({"mask": batch["mask"]})
  with pytest.raises(ValueError, match="unknown modalities"):
    model.compute_terms({**batch, "audio": batch["label"]})
  bad = dict(batch)
  bad["label"] = batch["label"].copy()
  bad["label"][0, 0] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError, match="modality 'label' has NaN"):
    model.compute_terms(bad)
  with pytest.raises(ValueError, match="unknown likelihood"):
    mods.Modality("x", (3,), likelihood="poisson")
  with pytest.raises(ValueError, match="image side 27"):
    mods.image(shape=(27, 27, 1))


# ------------------------------------------------------------------ inference API
def test_inference_api_shapes_and_determinism():
  model = tiny_model()
  batch = tiny_batch(4)
  loc, scale = model.encode({"label": batch["label"]})
  assert loc.shape == (4, 3) and np.all(scale.numpy() > 0)
  recon = model.reconstruct({"image": batch["image"]})
  assert recon["image"].shape == (4, 16, 16, 1) and recon["label"].shape == (4, 4)
  np.testing.assert_allclose(recon["label"].numpy().sum(-1), 1.0, rtol=1e-5)
  gen = model.generate({"label": batch["label"]}, num_samples=5, seed=7)
  assert gen["image"].shape == (4, 5, 16, 16, 1)
  again = model.generate({"label": batch["label"]}, num_samples=5, seed=7)
  np.testing.assert_array_equal(gen["image"], again["image"])
  other = model.generate({"label": batch["label"]}, num_samples=5, seed=8)
  assert not np.allclose(gen["image"], other["image"])
  samples = model.sample(3, seed=1)
  assert samples["image"].shape == (3, 16, 16, 1)
  # Encoding with an explicit mask equals dropping the key.
  masked = model.encode(batch, mask=np.array([[0, 1]] * 4, np.float32))
  np.testing.assert_allclose(masked[0], loc, atol=1e-6)


# ------------------------------------------------------------------ training + round trips
def _dataset(n=16, batch=8):
  return tf.data.Dataset.from_tensor_slices(tiny_batch(n)).batch(batch)


def test_fit_tracks_every_term_and_warmup_resumes():
  model = tiny_model()
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  warm = callbacks.KLWarmup(warmup_steps=4, beta=1.0)
  history = model.fit(_dataset(), epochs=1, verbose=0, callbacks=[warm])
  for key in ("loss", "kl", "elbo", "nll_image", "nll_label"):
    assert key in history.history and np.isfinite(history.history[key][0])
  assert history.history["loss"][0] > 0
  assert int(model.train_steps.numpy()) == 2
  assert model.kl_weight.numpy() == pytest.approx(0.25)  # set at the start of step 2
  model.fit(_dataset(), epochs=1, verbose=0, callbacks=[warm])
  assert model.kl_weight.numpy() == pytest.approx(0.75)


def test_keras_reload_keeps_outputs_and_optimizer(tmp_path):
  model = tiny_model()
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.fit(_dataset(), epochs=1, verbose=0)
  batch = tiny_batch(3)
  reloaded = helpers.assert_keras_reload(
      model, tmp_path, lambda m: m.reconstruct({"image": batch["image"]}))
  assert int(reloaded.optimizer.iterations.numpy()) == 2
  assert int(reloaded.train_steps.numpy()) == 2
  want = [v.numpy() for v in model.optimizer.variables]
  got = [v.numpy() for v in reloaded.optimizer.variables]
  assert len(want) == len(got)
  for a, b in zip(want, got):
    np.testing.assert_array_equal(a, b)
  helpers.assert_config_roundtrip(model)


def test_checkpoint_resume(tmp_path):
  model = tiny_model()
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.fit(_dataset(), epochs=1, verbose=0)
  ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
  path = ckpt.save(str(tmp_path / "ckpt"))
  fresh = tiny_model(seed=5)
  fresh.compile(optimizer=keras.optimizers.Adam(1e-3))
  fresh.optimizer.build(fresh.trainable_variables)
  tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path).assert_consumed()
  assert int(fresh.optimizer.iterations.numpy()) == 2
  assert int(fresh.train_steps.numpy()) == 2
  for a, b in zip(model.get_weights(), fresh.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_jit_compile_matches_eager_loss():
  model = tiny_model()
  model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
  history = model.fit(_dataset(), epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])


def test_mixed_precision_fit():
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(_dataset(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.generate({"label": tiny_batch(2)["label"]}, seed=1)["image"].dtype == tf.float32
  finally:
    keras.mixed_precision.set_global_policy("float32")


def test_checkpoint_restores_every_variable(tmp_path):
  """A plain tf.train.Checkpoint(model=...) must restore BatchNorm statistics and
  the sampling-seed state too (layers kept in Python lists are not followed by
  tf.train.Checkpoint unless the model exposes them)."""
  def make(seed):
    return MVAE([mods.image(shape=(16, 16, 1), filters=4, hidden_units=(16,), batch_norm=True),
                 mods.label(4, hidden_units=(8,))], latent_dim=3, seed=seed)
  model = make(0)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.fit(_dataset(), epochs=1, verbose=0)
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  fresh = make(5)
  fresh.compile(optimizer=keras.optimizers.Adam(1e-3))
  tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
  def by_path(m):  # Paths without the model's own (auto-numbered) name.
    return {p.split("/", 1)[-1]: v for p, v in helpers.variables_by_path(m).items()}
  want, got = by_path(model), by_path(fresh)
  assert set(want) == set(got)
  moving = [p for p in want if "moving_mean" in p]
  assert moving and any(np.any(want[p] != 0) for p in moving)
  for p in want:
    np.testing.assert_array_equal(got[p], want[p], err_msg=p)
