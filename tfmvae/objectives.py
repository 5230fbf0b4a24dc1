"""Objective pieces shared by every model family: subsets, KL, GAN losses.

The MVAE sub-sampled objective (Wu & Goodman 2018) for one minibatch is

    L = ELBO(X_all) + sum_i ELBO(x_i) + sum_{j=1..k} ELBO(X_j),

    ELBO(X) = E_{q(z|X)}[ sum_{i in X} lambda_i log p(x_i | z) ] - beta KL(q(z|X) || p(z)),

with X_j random subsets. With per-example presence masks m_n, the subset used for
example n is X ∩ present(n): an example trains only the terms it supports, and a
term with no present modality is the prior (reconstruction 0, KL exactly 0).
"""
import itertools

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def fixed_subsets(num_modalities):
  """The joint subset then each unimodal subset, as 0/1 tuples (unique).

  >>> fixed_subsets(2)
  [(1, 1), (1, 0), (0, 1)]
  """
  subsets = [tuple([1] * num_modalities)]
  for i in range(num_modalities):
    one = tuple(1 if j == i else 0 for j in range(num_modalities))
    if one not in subsets:
      subsets.append(one)
  return subsets


def random_subsets(num_modalities, num_subsets, seed):
  """`num_subsets` subsets drawn uniformly from the 2^M - 1 non-empty subsets.

  Args:
    num_modalities: M.
    num_subsets: k, the number of random subsets.
    seed: a `keras.random.SeedGenerator` or int seed.

  Returns:
    float32 [k, M] 0/1 masks (bit i of an integer in [1, 2^M - 1]).
  """
  codes = keras.random.randint((num_subsets,), 1, 2**num_modalities, seed=seed, dtype="int32")
  bits = tf.bitwise.right_shift(codes[:, None], tf.range(num_modalities, dtype=tf.int32)[None])
  return tf.cast(tf.bitwise.bitwise_and(bits, 1), tf.float32)


def all_subsets(num_modalities):
  """Every non-empty subset as 0/1 tuples (for evaluation over all conditionings)."""
  return [s for s in itertools.product((0, 1), repeat=num_modalities) if any(s)]


def standard_normal(batch_size, latent_dim):
  """N(0, I) as a batch of MultivariateNormalDiag [batch_size] x [latent_dim]."""
  return tfd.MultivariateNormalDiag(loc=tf.zeros([batch_size, latent_dim]),
                                    scale_diag=tf.ones([batch_size, latent_dim]))


def gaussian_kl(posterior, prior):
  """KL(posterior || prior) per example [batch] via TFP's analytic KL."""
  return tfd.kl_divergence(posterior, prior)


def average_loss(per_example_loss):
  """Mean over the global batch (correct under tf.distribute, whose Keras 3
  optimizers sum replica gradients); equals the plain mean without a strategy."""
  return tf.nn.compute_average_loss(tf.cast(per_example_loss, tf.float32))


def discriminator_loss(real_logits, fake_logits_list):
  """-[log D(x) + sum_f log(1 - D(x_f))] per example, from logits (stable form)."""
  loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(real_logits),
                                                 logits=real_logits)
  for fake in fake_logits_list:
    loss += tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(fake), logits=fake)
  return _sum_to_batch(loss)


def generator_loss(fake_logits_list):
  """Non-saturating generator loss -sum_f log D(x_f) per example."""
  loss = 0.0
  for fake in fake_logits_list:
    loss += tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(fake), logits=fake)
  return _sum_to_batch(loss)


def _sum_to_batch(x):
  x = tf.convert_to_tensor(x)
  if x.shape.rank is not None and x.shape.rank > 1:
    x = tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]), axis=-1)
  return x
