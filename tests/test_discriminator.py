"""Tests of tfmvae.networks.Discriminator (Larsen et al. 2016's net with a feature tap)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae.networks import Discriminator
from tfmvae.networks.discriminator import strided_blocks


def test_strided_blocks_scale_with_image_size():
  assert strided_blocks(64) == (3, 8)   # Larsen's CelebA net: 64 -> 8x8.
  assert strided_blocks(32) == (3, 4)
  assert strided_blocks(28) == (3, 4)   # 28 -> 14 -> 7 -> 4 ("same" padding).
  assert strided_blocks(16) == (2, 4)


@pytest.mark.parametrize("feature_layer,expected", [
    (1, (2, 32, 32, 4)), (2, (2, 16, 16, 16)), (3, (2, 8, 8, 32)), (4, (2, 4, 4, 32))])
def test_shapes_and_feature_layer(feature_layer, expected):
  d = Discriminator((32, 32, 1), filters=4, feature_layer=feature_layer, hidden_units=8)
  logits, features = d(tf.random.uniform([2, 32, 32, 1]))
  assert logits.shape == (2, 1)
  assert features.shape == expected
  assert logits.dtype == tf.float32 and features.dtype == tf.float32


def test_larsen_celeba_architecture_at_64x64():
  d = Discriminator((64, 64, 3))  # Defaults: 32 -> 128/256/256 -> 512, Dis_l = conv 4.
  assert [c.filters for c in d.convs] == [32, 128, 256, 256]
  assert [c.strides for c in d.convs] == [(1, 1), (2, 2), (2, 2), (2, 2)]
  assert [c.kernel_size for c in d.convs] == [(5, 5)] * 4
  assert d.dense.units == 512
  _, features = d(tf.zeros([1, 64, 64, 3]))
  assert features.shape == (1, 8, 8, 256)


def test_features_are_the_chosen_layer_activations():
  d = Discriminator((16, 16, 1), filters=4, feature_layer=2, hidden_units=8)
  x = tf.random.uniform([3, 16, 16, 1], seed=1)
  _, features = d(x, training=False)
  h = tf.nn.relu(d.convs[0](x))
  h = tf.nn.relu(d.norms[1](d.convs[1](h), training=False))
  np.testing.assert_allclose(features.numpy(), h.numpy(), rtol=1e-6, atol=1e-6)


def test_feature_layer_out_of_range_raises():
  with pytest.raises(ValueError, match=r"feature_layer must be in \[1, 3\]"):
    Discriminator((16, 16, 1), feature_layer=4)  # 16x16 has 1 + 2 convolutions.
  with pytest.raises(ValueError, match="image_shape"):
    Discriminator((16, 16))


def test_float32_outputs_under_mixed_precision():
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    d = Discriminator((16, 16, 1), filters=4, feature_layer=3, hidden_units=8)
    logits, features = d(tf.random.uniform([2, 16, 16, 1]))
    assert d.convs[1].compute_dtype == "float16"
  finally:
    keras.config.set_dtype_policy(previous)
  assert logits.dtype == tf.float32 and features.dtype == tf.float32
  assert np.all(np.isfinite(logits.numpy()))


def test_config_and_keras_round_trip(tmp_path):
  d = Discriminator((16, 16, 1), filters=4, feature_layer=3, hidden_units=8,
                    batch_norm=False, kernel_size=3, name="disc")
  x = tf.random.uniform([2, 16, 16, 1], seed=2)
  logits, features = d(x)
  clone = Discriminator.from_config(d.get_config())
  clone.build((None, 16, 16, 1))
  clone.set_weights(d.get_weights())
  l2, f2 = clone(x)
  np.testing.assert_allclose(l2.numpy(), logits.numpy(), rtol=1e-6)
  path = str(tmp_path / "d.keras")
  d.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, Discriminator) and loaded.feature_layer == 3
  l3, f3 = loaded(x)
  np.testing.assert_allclose(l3.numpy(), logits.numpy(), rtol=1e-6)
  np.testing.assert_allclose(f3.numpy(), features.numpy(), rtol=1e-6)
