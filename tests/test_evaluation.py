"""Evaluation: importance-sampled likelihoods vs. exact linear-Gaussian answers and a
NumPy reference; coherence counting; the cached coherence classifier."""
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tfmvae import evaluation
from tfmvae import modalities as mods
from tfmvae.models import MVAE

# ------------------------------------------------------------------ linear-Gaussian toy
# p(z) = N(0, I_2); p(a | z) = N(W_a z + b_a, s_a^2 I_3); p(b | z) = N(W_b z + b_b, s_b^2 I_2).
# W_i has orthogonal columns, so each likelihood seen as a function of z is a
# Gaussian with DIAGONAL precision W_i^T W_i / s_i^2 and mean
# (W_i^T W_i)^-1 W_i^T (x_i - b_i): a diagonal Gaussian expert can represent it
# exactly, and the product of experts (with eps=0) is the exact posterior p(z | X).
W = {"a": np.array([[0.8, 1.5], [0.8, -1.5], [0.8, 0.0]]),
     "b": np.array([[0.7, 0.3], [0.7, -0.3]])}
B = {"a": np.array([0.5, -1.0, 0.2]), "b": np.array([1.0, 0.3])}
SIGMA = {"a": 0.5, "b": 0.8}


def linear_model(loc_shift=0.0, logvar_shift=0.0):
  """The toy as an MVAE with linear nets; shifts make q(z | x) deliberately inexact."""
  model = MVAE([mods.Modality("a", (3,), likelihood="gaussian", network="mlp",
                              hidden_units=(), sigma=SIGMA["a"]),
                mods.Modality("b", (2,), likelihood="gaussian", network="mlp",
                              hidden_units=(), sigma=SIGMA["b"])],
               latent_dim=2, eps=0.0, seed=0)
  for i, name in enumerate(("a", "b")):
    w, bias, s = W[name], B[name], SIGMA[name]
    gram = np.diag(w.T @ w)  # W^T W is diagonal by construction.
    proj = (w / gram).T  # (W^T W)^-1 W^T, [2, dx]
    head = model.experts[i]
    head.loc_layer.kernel.assign(proj.T.astype(np.float32))
    head.loc_layer.bias.assign((-proj @ bias + loc_shift).astype(np.float32))
    head.logvar_layer.kernel.assign(np.zeros_like(head.logvar_layer.kernel.numpy()))
    head.logvar_layer.bias.assign((np.log(s**2 / gram) + logvar_shift).astype(np.float32))
    model.decoders[i].out.kernel.assign(w.T.astype(np.float32))
    model.decoders[i].out.bias.assign(bias.astype(np.float32))
  return model


def np_gauss_logpdf(x, mean, cov):
  d = x.shape[-1]
  diff = x - mean
  sol = np.linalg.solve(cov, diff.T).T
  _, logdet = np.linalg.slogdet(cov)
  return -0.5 * (np.sum(diff * sol, -1) + logdet + d * math.log(2 * math.pi))


def exact_log_marginal(xs, names):
  """log p(X) of the stacked linear-Gaussian: N(stack b, W W^T + diag s^2)."""
  w = np.concatenate([W[n] for n in names])
  mean = np.concatenate([B[n] for n in names])
  noise = np.concatenate([np.full(len(B[n]), SIGMA[n]**2) for n in names])
  x = np.concatenate([xs[n] for n in names], axis=-1)
  return np_gauss_logpdf(x, mean, w @ w.T + np.diag(noise))


def toy_data(n=8, seed=0):
  """Exact samples of the toy model (float64)."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 2))
  return {k: z @ W[k].T + B[k] + SIGMA[k] * rng.normal(size=(n, len(B[k])))
          for k in ("a", "b")}


def as_f32(xs):
  return {k: np.asarray(v, np.float32) for k, v in xs.items()}


@pytest.mark.parametrize("subset", [("a",), ("b",), ("a", "b")])
def test_exact_posterior_gives_exact_log_marginal_with_zero_variance(subset):
  model = linear_model()
  xs = toy_data()
  log_w = evaluation.log_importance_weights(
      model, as_f32(xs), subset, tf.random.stateless_normal([16, 8, 2], seed=[1, 2]) * 2.0)
  exact = exact_log_marginal(xs, subset)
  # With q = p(z | X) every weight equals p(X): no spread over z (float32 round-off
  # on values of magnitude ~10 gives ~1e-5).
  np.testing.assert_allclose(np.std(log_w.numpy(), axis=0), 0.0, atol=1e-4)
  np.testing.assert_allclose(log_w.numpy(), np.broadcast_to(exact, log_w.shape), atol=2e-4)
  est = evaluation.importance_log_likelihood_batch(model, as_f32(xs), subset, num_samples=5)
  np.testing.assert_allclose(est.numpy(), exact, atol=2e-4)


def test_conditional_is_joint_minus_marginal_and_exact():
  model = linear_model()
  xs = toy_data(n=10, seed=3)
  data = tf.data.Dataset.from_tensor_slices(as_f32(xs))
  mean, values = evaluation.importance_log_likelihood(
      model, data, subset=("a",), conditioned_on=("b",), num_samples=3, batch_size=4,
      return_per_example=True)
  exact = exact_log_marginal(xs, ("a", "b")) - exact_log_marginal(xs, ("b",))
  np.testing.assert_allclose(values, exact, atol=3e-4)
  assert mean == pytest.approx(float(np.mean(exact)), abs=3e-4)
  # The exact conditional p(a | b) from Gaussian conditioning agrees (sanity of the toy).
  w = np.concatenate([W["a"], W["b"]])
  cov = w @ w.T + np.diag([SIGMA["a"]**2] * 3 + [SIGMA["b"]**2] * 2)
  xb = xs["b"] - B["b"]
  cond_mean = B["a"] + (cov[:3, 3:] @ np.linalg.solve(cov[3:, 3:], xb.T)).T
  cond_cov = cov[:3, :3] - cov[:3, 3:] @ np.linalg.solve(cov[3:, 3:], cov[3:, :3])
  np.testing.assert_allclose(np_gauss_logpdf(xs["a"], cond_mean, cond_cov), exact, atol=1e-8)


def np_reference_estimate(xs, subset, noise, loc_shift, logvar_shift):
  """The logsumexp estimator in NumPy from the toy's parameters and fixed noise."""
  precision, weighted = np.ones((len(xs["a"]), 2)), np.zeros((len(xs["a"]), 2))
  for n in subset:  # NumPy product of experts with the prior expert N(0, I).
    gram = np.diag(W[n].T @ W[n])
    mu = (xs[n] - B[n]) @ (W[n] / gram) + loc_shift
    var = SIGMA[n]**2 / gram * np.exp(logvar_shift)
    precision = precision + 1.0 / var
    weighted = weighted + mu / var
  q_var = 1.0 / precision
  q_loc = weighted * q_var
  z = q_loc[None] + np.sqrt(q_var)[None] * noise  # [K, N, 2]
  log_q = np.sum(-0.5 * (z - q_loc)**2 / q_var - 0.5 * np.log(2 * np.pi * q_var), -1)
  log_prior = np.sum(-0.5 * z**2 - 0.5 * np.log(2 * np.pi), -1)
  log_lik = 0.0
  for n in subset:
    mean = z @ W[n].T + B[n]
    log_lik = log_lik + np.sum(-0.5 * (xs[n] - mean)**2 / SIGMA[n]**2
                               - 0.5 * np.log(2 * np.pi * SIGMA[n]**2), -1)
  log_w = log_lik + log_prior - log_q
  top = log_w.max(0)
  return top + np.log(np.mean(np.exp(log_w - top), 0))


@pytest.mark.parametrize("subset", [("a",), ("a", "b")])
def test_estimator_matches_numpy_reference_on_fixed_samples(subset):
  loc_shift, logvar_shift = 0.7, 0.9  # q is not the posterior: weights vary.
  model = linear_model(loc_shift, logvar_shift)
  xs = toy_data(n=6, seed=5)
  noise = np.random.default_rng(0).normal(size=(7, 6, 2))
  est = evaluation.importance_log_likelihood_batch(model, as_f32(xs), subset, noise=noise,
                                                   chunk_size=3)  # 3 + 3 + 1 chunks.
  ref = np_reference_estimate(xs, subset, noise, loc_shift, logvar_shift)
  # float32 model vs. float64 reference on values ~ -10: 1e-4 relative.
  np.testing.assert_allclose(est.numpy(), ref, rtol=1e-4, atol=1e-4)
  assert np.std(ref) > 0.1  # The weights really do differ between examples/samples.


def test_inexact_proposal_is_a_lower_bound_that_tightens_with_k():
  model = linear_model(loc_shift=0.5, logvar_shift=0.5)
  xs = toy_data(n=64, seed=7)
  exact = float(np.mean(exact_log_marginal(xs, ("a", "b"))))
  data = as_f32(xs)
  est = {k: evaluation.importance_log_likelihood(model, data, subset=("a", "b"),
                                                 num_samples=k, batch_size=64, seed=1)
         for k in (1, 10, 1000)}
  # E[estimate] <= log p(X) (Jensen) and the gap shrinks with K. Over 64 examples
  # the Monte Carlo noise of the mean is far below the gaps (K=1 gap ~ KL ~ 0.5 nats).
  assert est[1] < est[10] < est[1000] <= exact + 0.01
  assert exact - est[1] > 0.2
  assert exact - est[1000] < 0.03


def test_seed_determinism_and_examples_without_the_modality_are_skipped():
  model = linear_model(loc_shift=0.3)
  xs = as_f32(toy_data(n=9, seed=2))
  xs["mask"] = np.ones((9, 2), np.float32)
  xs["mask"][[1, 4], 1] = 0.0  # b missing for two examples.
  first, v1 = evaluation.importance_log_likelihood(model, xs, ("a", "b"), num_samples=8,
                                                   batch_size=4, seed=3,
                                                   return_per_example=True)
  again = evaluation.importance_log_likelihood(model, xs, ("a", "b"), num_samples=8,
                                               batch_size=4, seed=3)
  other = evaluation.importance_log_likelihood(model, xs, ("a", "b"), num_samples=8,
                                               batch_size=4, seed=4)
  assert first == again
  assert first != other
  assert v1.shape == (7,)
  only_a = evaluation.importance_log_likelihood(model, xs, ("a",), num_samples=8,
                                                batch_size=4, return_per_example=True)[1]
  assert only_a.shape == (9,)


def test_bad_subsets_raise():
  model = linear_model()
  xs = as_f32(toy_data(n=2))
  with pytest.raises(ValueError, match="overlap"):
    evaluation.importance_log_likelihood(model, xs, ("a",), conditioned_on=("a",),
                                         num_samples=2)
  with pytest.raises(ValueError, match="unknown"):
    evaluation.importance_log_likelihood(model, xs, ("c",), num_samples=2)
  with pytest.raises(ValueError, match="no modality"):
    evaluation.importance_log_likelihood(model, {"a": xs["a"]}, ("b",), num_samples=2)


# ------------------------------------------------------------------ discrete likelihoods
def np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.sum(np.exp(x), -1, keepdims=True))


def test_log_weights_with_bernoulli_image_and_categorical_label_match_numpy():
  model = MVAE([mods.image(shape=(4, 4, 1), network="mlp", hidden_units=(8,)),
                mods.label(3, hidden_units=(8,))], latent_dim=2, seed=0)
  rng = np.random.default_rng(0)
  inputs = {"image": rng.uniform(size=(5, 4, 4, 1)).astype(np.float32),
            "label": np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 0]]}
  z = rng.normal(size=(4, 5, 2)).astype(np.float32)
  log_w = evaluation.log_importance_weights(model, inputs, ("image", "label"), z).numpy()
  loc, scale = (t.numpy() for t in model.encode(inputs))
  logits_x = model.decoders[0](z.reshape(-1, 2)).numpy().reshape(4, 5, 16)
  logits_y = model.decoders[1](z.reshape(-1, 2)).numpy().reshape(4, 5, 3)
  x = inputs["image"].reshape(1, 5, 16)
  ll_x = np.sum(x * logits_x - np.logaddexp(0.0, logits_x), -1)  # cross-entropy form
  ll_y = np.sum(inputs["label"][None] * np_log_softmax(logits_y), -1)
  log_q = np.sum(-0.5 * ((z - loc) / scale)**2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)
  log_p = np.sum(-0.5 * z**2 - 0.5 * np.log(2 * np.pi), -1)
  np.testing.assert_allclose(log_w, ll_x + ll_y + log_p - log_q, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ coherence counting
def stub_model(wrong_labels=(), wrong_sample=None, label_likelihood="categorical"):
  """A real MVAE (for parse_inputs/modalities) whose reconstruct/generate are rigged.

  The "image" stores the class in pixel [0, 0] (categorical: class / 10) or the
  attribute bits in pixels [0, :A]. reconstruct returns the true label except for
  examples whose class is in `wrong_labels`; generate writes the conditioning label
  into the image except for sample index `wrong_sample`, which gets class 0 / no bits.
  """
  if label_likelihood == "categorical":
    label = mods.label(3, hidden_units=(4,))
  else:
    label = mods.attributes(3, hidden_units=(4,))  # key "attributes", as shapes_pairs
  key = label.name
  model = MVAE([mods.image(shape=(4, 4, 1), network="mlp", hidden_units=(4,)), label],
               latent_dim=2, seed=0)
  multi = label_likelihood != "categorical"

  def read(images):
    images = np.asarray(images)
    if multi:
      return images[:, 0, :3, 0]
    index = np.clip(np.round(images[:, 0, 0, 0] * 10), 0, 2).astype(int)
    return np.eye(3, dtype=np.float32)[index]

  def write(labels):
    labels = np.asarray(labels)
    img = np.zeros((len(labels), 4, 4, 1), np.float32)
    if multi:
      img[:, 0, :3, 0] = labels
    else:
      img[:, 0, 0, 0] = np.argmax(labels, -1) / 10.0
    return img

  def reconstruct(inputs, mask=None):
    if set(inputs) == {key}:  # label -> image at the posterior mean: always right.
      return {"image": tf.constant(write(inputs[key])), key: inputs[key]}
    assert set(inputs) == {"image"}  # Nothing but the image is given.
    y = read(inputs["image"]).copy()
    for row in range(len(y)):
      if not multi and np.argmax(y[row]) in wrong_labels:
        y[row] = np.roll(y[row], 1)
      if multi and row in wrong_labels:
        y[row, 0] = 1.0 - y[row, 0]  # One attribute wrong.
    return {"image": inputs["image"], key: tf.constant(y)}

  def generate(inputs, mask=None, num_samples=1, seed=None):
    assert set(inputs) == {key}  # Nothing but the label is given.
    y = np.asarray(inputs[key])
    imgs = np.repeat(write(y)[:, None], num_samples, axis=1)
    if wrong_sample is not None:
      imgs[:, wrong_sample] = write(np.zeros_like(y) if multi else
                                    np.eye(3, dtype=np.float32)[np.zeros(len(y), int)])
    return {"image": tf.constant(imgs), key: tf.constant(y)}

  model.reconstruct = reconstruct
  model.generate = generate
  classifier = lambda x, training=False: tf.constant(  # noqa: E731
      (read(x) * 20.0 - 10.0) if multi else np.log(read(x) + 1e-6))
  return model, classifier, write


def test_coherence_counts_exact_accuracies_and_skips_missing_labels():
  model, classifier, write = stub_model(wrong_labels=(2,), wrong_sample=1)
  classes = np.array([0, 1, 2, 2, 1, 0, 2, 1])
  labels = np.eye(3, dtype=np.float32)[classes]
  mask = np.ones((8, 2), np.float32)
  mask[7, 1] = 0.0  # Example 7 has no label: not counted.
  data = {"image": write(labels), "label": labels, "mask": mask}
  out = evaluation.cross_modal_coherence(model, data, classifier, num_samples=3, batch_size=3)
  # Counted: classes [0,1,2,2,1,0,2]; image->label wrong for class 2 (3 of 7).
  assert out["num_examples"] == 7
  assert out["image_to_label_accuracy"] == pytest.approx(4 / 7)
  # label->image: sample 1 is class 0 -> right only for class-0 examples (2 of 7).
  assert out["label_to_image_accuracy"] == pytest.approx((7 * 2 + 2) / 21)
  assert "image_to_label_per_attribute" not in out
  mean = evaluation.cross_modal_coherence(model, data, classifier, num_samples=3,
                                          posterior_mean=True)
  assert mean["label_to_image_accuracy"] == 1.0
  assert mean["image_to_label_accuracy"] == pytest.approx(4 / 7)


def test_coherence_per_attribute_for_attribute_vectors():
  model, classifier, write = stub_model(wrong_labels=(0, 3), wrong_sample=0,
                                        label_likelihood="bernoulli")
  attrs = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]], np.float32)
  data = tf.data.Dataset.from_tensor_slices(
      {"image": write(attrs), "attributes": attrs, "mask": np.ones((4, 2), np.float32)})
  out = evaluation.cross_modal_coherence(model, data, classifier, label_key="attributes",
                                         num_samples=2)
  # image->label: attribute 0 wrong for rows 0 and 3.
  np.testing.assert_allclose(out["image_to_label_per_attribute"], [0.5, 1.0, 1.0])
  assert out["image_to_label_accuracy"] == pytest.approx(10 / 12)
  # label->image: sample 0 has no attribute: right where the truth is 0.
  expected = (1 + (attrs == 0).mean(0)) / 2
  np.testing.assert_allclose(out["label_to_image_per_attribute"], expected)
  assert out["label_to_image_accuracy"] == pytest.approx(expected.mean())


def test_coherence_with_a_real_model_returns_valid_accuracies():
  model = MVAE([mods.image(shape=(4, 4, 1), network="mlp", hidden_units=(4,)),
                mods.label(3, hidden_units=(4,))], latent_dim=2, seed=0)
  _, classifier, write = stub_model()
  labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
  out = evaluation.cross_modal_coherence(model, {"image": write(labels), "label": labels},
                                         classifier, num_samples=2, seed=1)
  again = evaluation.cross_modal_coherence(model, {"image": write(labels), "label": labels},
                                           classifier, num_samples=2, seed=1)
  assert out == again
  assert 0.0 <= out["image_to_label_accuracy"] <= 1.0
  assert 0.0 <= out["label_to_image_accuracy"] <= 1.0
  with pytest.raises(ValueError, match="no modality"):
    evaluation.cross_modal_coherence(model, {"image": write(labels)}, classifier,
                                     label_key="attributes")


# ------------------------------------------------------------------ classifier
def squares(n, seed=0, multi=False):
  """16x16 images: class k (or attribute k) = a bright 4x4 square at corner k."""
  rng = np.random.default_rng(seed)
  corners = [(0, 0), (0, 12), (12, 0)]
  images = rng.uniform(0, 0.2, size=(n, 16, 16, 1)).astype(np.float32)
  if multi:
    labels = rng.integers(0, 2, size=(n, 3)).astype(np.float32)
  else:
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
  for i in range(n):
    for k, (r, c) in enumerate(corners):
      if labels[i, k]:
        images[i, r:r + 4, c:c + 4] = 1.0
  return {"image": images, "label": labels, "mask": np.ones((n, 2), np.float32)}


def test_classifier_learns_is_cached_atomically_and_reloaded(tmp_path):
  train = squares(192, seed=0)
  train["mask"][:32, 1] = 0.0  # Unlabeled rows are ignored (their labels are wrong here).
  train["label"][:32] = np.eye(3, dtype=np.float32)[0]
  ds = tf.data.Dataset.from_tensor_slices(train)
  clf = evaluation.train_classifier(ds, epochs=6, batch_size=32, cache_dir=tmp_path,
                                    name="squares")
  assert clf.multi_label is False
  acc = evaluation.classifier_accuracy(clf, squares(60, seed=1))
  assert acc["accuracy"] >= 0.9 and acc["num_examples"] == 60
  directory = tmp_path / "squares"
  files = sorted(os.listdir(directory))
  assert files == ["classifier.json", "classifier.keras"]  # No temporary leftovers.
  meta = json.loads((directory / "classifier.json").read_text())
  assert meta["multi_label"] is False and meta["image_shape"] == [16, 16, 1]
  mtime = os.path.getmtime(directory / "classifier.keras")
  cached = evaluation.train_classifier(ds, epochs=6, batch_size=32, cache_dir=tmp_path,
                                       name="squares")
  assert os.path.getmtime(directory / "classifier.keras") == mtime
  x = squares(5, seed=2)["image"]
  np.testing.assert_allclose(cached(x).numpy(), clf(x).numpy(), atol=1e-6)
  # Different settings do not reuse the cache.
  retrained = evaluation.train_classifier(ds, epochs=1, batch_size=32, cache_dir=tmp_path,
                                          name="squares")
  assert json.loads((directory / "classifier.json").read_text())["epochs"] == 1
  assert retrained is not cached


def test_multi_label_classifier_per_attribute_accuracy(tmp_path):
  train = squares(192, seed=3, multi=True)
  clf = evaluation.train_classifier(train, epochs=6, batch_size=32,
                                    cache_dir=tmp_path)  # Not cached: no name.
  assert clf.multi_label is True
  assert not os.listdir(tmp_path)
  acc = evaluation.classifier_accuracy(clf, squares(60, seed=4, multi=True))
  assert len(acc["per_attribute"]) == 3
  assert min(acc["per_attribute"]) >= 0.85
  assert acc["accuracy"] == pytest.approx(np.mean(acc["per_attribute"]))


def test_classifier_by_dataset_name_uses_tfmvae_data(tmp_path, monkeypatch):
  calls = []

  def fake_pairs(split):
    calls.append(split)
    return tf.data.Dataset.from_tensor_slices(squares(64, seed=5))

  import tfmvae.data
  monkeypatch.setattr(tfmvae.data, "fake_pairs", fake_pairs, raising=False)
  evaluation.train_classifier("fake_pairs", epochs=1, batch_size=32, cache_dir=tmp_path)
  assert calls == ["train"]
  assert (tmp_path / "fake_pairs" / "classifier.keras").is_file()
  with pytest.raises(ValueError, match="unknown dataset"):
    evaluation.train_classifier("no_such_dataset", cache_dir=tmp_path)
