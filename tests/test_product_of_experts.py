"""NumPy-reference tests of the product of Gaussian experts.

Tolerances: float32 evaluation against a float64 NumPy reference; rtol 1e-5 covers
float32 rounding of a handful of exp/log operations.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfmvae.layers import ProductOfExperts
from tfmvae.layers import product_of_experts
from tests import helpers

tfd = tfp.distributions
RTOL = 1e-5


def numpy_poe(loc, scale, mask=None, prior=None, eps=1e-8):
  """Direct formula in float64: T = sum precisions, mu = sum(T_i mu_i) / T."""
  loc, scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
  b, e, d = loc.shape
  mask = np.ones((b, e)) if mask is None else np.asarray(mask, np.float64)
  if prior is None:
    p_loc, p_var = np.zeros((b, d)), np.ones((b, d))
  else:
    p_loc = np.broadcast_to(prior[0], (b, d)).astype(np.float64)
    p_var = np.broadcast_to(prior[1], (b, d)).astype(np.float64) ** 2 + eps
  prec = mask[:, :, None] / (scale**2 + eps)
  total = 1.0 / p_var + prec.sum(1)
  mean = (p_loc / p_var + (prec * loc).sum(1)) / total
  return mean, np.sqrt(1.0 / total)


@pytest.mark.parametrize("experts", [1, 2, 5])
def test_matches_numpy(experts):
  rng = np.random.default_rng(experts)
  loc = rng.normal(size=(4, experts, 3)).astype(np.float32)
  scale = rng.uniform(0.2, 3.0, size=(4, experts, 3)).astype(np.float32)
  got_loc, got_scale = product_of_experts(loc, scale)
  want_loc, want_scale = numpy_poe(loc, scale)
  np.testing.assert_allclose(got_loc, want_loc, rtol=RTOL, atol=1e-6)
  np.testing.assert_allclose(got_scale, want_scale, rtol=RTOL)


def test_exactly_one_prior_expert():
  # One unit-variance expert at mean 2 and the N(0, 1) prior: var 1/2, mean 1.
  # (Counting the prior twice, the MVAE bugfix-branch trap, would give 1/3, 2/3.)
  q = ProductOfExperts(eps=0.0)(tf.fill([1, 1, 2], 2.0), tf.ones([1, 1, 2]))
  np.testing.assert_allclose(q.variance(), [[0.5, 0.5]], rtol=RTOL)
  np.testing.assert_allclose(q.mean(), [[1.0, 1.0]], rtol=RTOL)


def test_mask_drops_experts():
  rng = np.random.default_rng(0)
  loc = rng.normal(size=(3, 3, 2)).astype(np.float32)
  scale = rng.uniform(0.5, 2, size=(3, 3, 2)).astype(np.float32)
  mask = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]], np.float32)
  got = product_of_experts(loc, scale, mask)
  want = numpy_poe(loc, scale, mask)
  np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=1e-6)
  np.testing.assert_allclose(got[1], want[1], rtol=RTOL)
  # Row 1 equals the product of the prior and expert 1 alone.
  alone = numpy_poe(loc[1:2, 1:2], scale[1:2, 1:2])
  np.testing.assert_allclose(got[0][1:2], alone[0], rtol=RTOL, atol=1e-6)


def test_all_missing_is_the_prior_with_zero_kl():
  loc = tf.constant(np.random.default_rng(1).normal(size=(2, 2, 4)), tf.float32)
  q = ProductOfExperts()(loc, tf.ones([2, 2, 4]) * 0.3, mask=tf.zeros([2, 2]))
  np.testing.assert_array_equal(q.mean(), np.zeros((2, 4)))
  np.testing.assert_array_equal(q.stddev(), np.ones((2, 4)))
  prior = tfd.MultivariateNormalDiag(tf.zeros([2, 4]), tf.ones([2, 4]))
  np.testing.assert_array_equal(tfd.kl_divergence(q, prior), np.zeros(2))


def test_missing_expert_with_nan_does_not_leak():
  loc = np.array([[[1.0], [np.nan]]], np.float32)
  scale = np.array([[[1.0], [np.nan]]], np.float32)
  got_loc, got_scale = product_of_experts(loc, scale, mask=[[1.0, 0.0]], eps=0.0)
  np.testing.assert_allclose(got_loc, [[0.5]], rtol=RTOL)
  np.testing.assert_allclose(got_scale, [[np.sqrt(0.5)]], rtol=RTOL)


def test_custom_prior():
  rng = np.random.default_rng(2)
  loc = rng.normal(size=(2, 2, 3)).astype(np.float32)
  scale = rng.uniform(0.5, 2, size=(2, 2, 3)).astype(np.float32)
  prior = (rng.normal(size=(2, 3)).astype(np.float32),
           rng.uniform(0.1, 4, size=(2, 3)).astype(np.float32))
  got = product_of_experts(loc, scale, mask=[[1, 1], [0, 0]], prior=prior)
  want = numpy_poe(loc, scale, [[1, 1], [0, 0]], prior=prior)
  np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=1e-6)
  np.testing.assert_allclose(got[1], want[1], rtol=RTOL)
  # All-missing row: the custom prior itself (its variance + eps).
  np.testing.assert_allclose(got[1][1], np.sqrt(prior[1][1]**2 + 1e-8), rtol=RTOL)


def test_tiny_and_huge_variances_are_stable():
  loc = np.array([[[3.0, -1.0], [1.0, 5.0]]], np.float32)
  scale = np.array([[[1e-15, 1e15], [1e15, 1e-3]]], np.float32)
  got_loc, got_scale = product_of_experts(loc, scale, eps=0.0)
  want_loc, want_scale = numpy_poe(loc, scale, eps=0.0)
  assert np.all(np.isfinite(got_loc)) and np.all(np.isfinite(got_scale))
  np.testing.assert_allclose(got_loc, want_loc, rtol=RTOL)
  np.testing.assert_allclose(got_scale, want_scale, rtol=RTOL)


def test_float16_inputs_give_float32_distribution():
  loc = tf.constant([[[1.0], [2.0]]], tf.float16)
  scale = tf.constant([[[1e-3], [300.0]]], tf.float16)  # var 1e-6 underflows in fp16 math
  q = ProductOfExperts(eps=0.0)(loc, scale)
  assert q.dtype == tf.float32
  want_loc, want_scale = numpy_poe(np.float32(loc), np.float32(scale), eps=0.0)
  np.testing.assert_allclose(q.mean(), want_loc, rtol=1e-3)  # fp16 inputs: 3 digits
  np.testing.assert_allclose(q.stddev(), want_scale, rtol=1e-3)


def test_gradients_match_numpy_finite_differences():
  rng = np.random.default_rng(3)
  loc0 = rng.normal(size=(2, 3, 2))
  scale0 = rng.uniform(0.5, 2, size=(2, 3, 2))
  mask = np.array([[1, 1, 0], [1, 0, 1]], np.float64)
  weights = rng.normal(size=(2, 2))

  def objective_np(loc, scale):
    m, s = numpy_poe(loc, scale, mask, eps=0.0)
    return np.sum(weights * m) + np.sum(weights * s)

  loc = tf.Variable(loc0, dtype=tf.float32)
  scale = tf.Variable(scale0, dtype=tf.float32)
  with tf.GradientTape() as tape:
    m, s = product_of_experts(loc, scale, mask.astype(np.float32), eps=0.0)
    obj = tf.reduce_sum(weights * m) + tf.reduce_sum(weights * s)
  g_loc, g_scale = tape.gradient(obj, [loc, scale])
  h = 1e-6
  for var0, grad, which in ((loc0, g_loc, 0), (scale0, g_scale, 1)):
    num = np.zeros_like(var0)
    for idx in np.ndindex(var0.shape):
      plus, minus = var0.copy(), var0.copy()
      plus[idx] += h
      minus[idx] -= h
      args_p = (plus, scale0) if which == 0 else (loc0, plus)
      args_m = (minus, scale0) if which == 0 else (loc0, minus)
      num[idx] = (objective_np(*args_p) - objective_np(*args_m)) / (2 * h)
    # float32 autodiff vs float64 central differences.
    np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-5)
  # Masked-out experts get exactly zero gradient.
  assert np.all(g_loc.numpy()[0, 2] == 0) and np.all(g_loc.numpy()[1, 1] == 0)


def test_layer_config_roundtrip():
  layer = ProductOfExperts(eps=1e-6, name="poe")
  clone = helpers.assert_config_roundtrip(layer)
  assert clone.eps == 1e-6


def test_jit_compiled():
  fn = tf.function(lambda l, s, m: product_of_experts(l, s, m), jit_compile=True)
  loc = tf.random.normal([3, 2, 4])
  scale = tf.random.uniform([3, 2, 4], 0.5, 1.5)
  mask = tf.constant([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
  for a, b in zip(fn(loc, scale, mask), product_of_experts(loc, scale, mask)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
