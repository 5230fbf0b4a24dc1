"""Tests for generated Moving MNIST, the bounce physics and the standard loaders."""
import gzip

import numpy as np
import pytest
import tensorflow as tf

from tfmvae.data import sprites
from tfmvae.data.moving_mnist import (moving_mnist, moving_mnist_standard,
                                      moving_mnist_tfds, sample_digit_motion)


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
  """A fake t10k set whose digit intensity tells its pool: 60 train, 120 val, 240 test."""
  directory = tmp_path_factory.mktemp("mnist")
  images = np.zeros((10000, 28, 28), np.uint8)
  images[:, 4:24, 8:20] = 60
  images[8000:9000, 4:24, 8:20] = 120
  images[9000:, 4:24, 8:20] = 240
  for name, array in (("images-idx3-ubyte", images),
                      ("labels-idx1-ubyte", np.zeros(10000, np.uint8))):
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in array.shape)
    (directory / f"t10k-{name}.gz").write_bytes(gzip.compress(header + array.tobytes()))
  return directory


def _take(ds, n):
  return next(iter(ds.take(n).batch(n))).numpy()


@pytest.mark.parametrize("stochastic", [False, True])
def test_shapes_dtype_range(stochastic):
  ds = moving_mnist("test", stochastic=stochastic, seq_len=5, num_sequences=3)
  assert ds.element_spec.shape == (5, 64, 64, 1)
  x = _take(ds, 3)
  assert x.dtype == np.float32 and x.shape == (3, 5, 64, 64, 1)
  assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5
  assert len(list(ds)) == 3


def test_fixed_split_is_byte_identical():
  a = _take(moving_mnist("validation", seq_len=4, num_sequences=60, seed=3), 60)
  b = _take(moving_mnist("validation", seq_len=4, num_sequences=60, seed=3), 60)
  c = _take(moving_mnist("validation", seq_len=4, num_sequences=60, seed=4), 60)
  assert a.tobytes() == b.tobytes()
  assert a.tobytes() != c.tobytes()


def test_default_fixed_size_and_train_streams():
  ds = moving_mnist("test", seq_len=2)
  assert ds.cardinality().numpy() in (1000, tf.data.UNKNOWN_CARDINALITY)
  train = moving_mnist("train", seq_len=2, num_sequences=4, stochastic=True)
  first, second = _take(train, 4), _take(train, 4)
  assert first.tobytes() != second.tobytes()  # Fresh sequences each iteration.


def test_digits_come_from_matching_pool(pool_dir):
  for split, value in (("train", 60), ("validation", 120), ("test", 240)):
    x = _take(moving_mnist(split, seq_len=3, num_sequences=4, data_dir=pool_dir), 4)
    np.testing.assert_allclose(np.unique(x), [0.0, value / 255.0], rtol=1e-6)


def test_svg_digit_size_and_single_digit_placement(pool_dir):
  x = _take(moving_mnist("test", num_digits=1, digit_size=32, seq_len=6,
                         num_sequences=2, data_dir=pool_dir), 2)
  assert x.shape == (2, 6, 64, 64, 1)
  rows = np.nonzero(x[0, 0, :, :, 0].max(1))[0]
  # 20 bright rows of 28, scaled by 32/28 (22.9), plus bilinear edge blur.
  assert 22 <= rows.max() - rows.min() + 1 <= 25


@pytest.mark.parametrize("stochastic", [False, True])
def test_digits_stay_inside_frame(stochastic):
  rng = np.random.default_rng(0)
  pos, _ = sample_digit_motion(rng, 200, 2, 30, 36, stochastic)
  assert pos.min() >= 0.0 and pos.max() <= 36.0


def test_deterministic_velocity_constant_between_bounces():
  rng = np.random.default_rng(1)
  pos, vel = sample_digit_motion(rng, 100, 2, 40, 36, stochastic=False)
  np.testing.assert_allclose(np.abs(vel), np.broadcast_to(np.abs(vel[:, :1]), vel.shape))
  step = pos[:, 1:] - pos[:, :-1]
  free = (pos[:, 1:] > 0) & (pos[:, 1:] < 36)  # No wall contact on that axis.
  np.testing.assert_allclose(step[free], vel[:, :-1][free], atol=1e-9)
  flipped = vel[:, 1:] != vel[:, :-1]
  assert flipped.any()
  np.testing.assert_array_equal(vel[:, 1:][flipped], -vel[:, :-1][flipped])
  assert not flipped[free].any()  # Velocity changes only at walls.


def test_stochastic_redraws_direction_at_walls():
  rng = np.random.default_rng(2)
  pos, vel = sample_digit_motion(rng, 100, 1, 40, 36, stochastic=True)
  assert np.all(vel == np.round(vel)) and np.abs(vel).max() <= 4
  unclamped = pos[:, :-1] + vel[:, :-1]
  low, high = unclamped < 0, unclamped > 36
  assert low.any() and high.any()
  assert np.all(vel[:, 1:][low] >= 1) and np.all(vel[:, 1:][high] <= -1)  # Away.
  no_contact = ~(low | high).any(-1)
  np.testing.assert_array_equal(vel[:, 1:][no_contact], vel[:, :-1][no_contact])


def test_paste_is_exact():
  sprite = tf.random.stateless_uniform((1, 1, 5, 5), (1, 2))
  pos = tf.constant([[[[3, 7]]]], tf.int32)
  out = sprites.paste_sprites(sprite, pos, 16).numpy()
  np.testing.assert_array_equal(out[0, 0, 3:8, 7:12], sprite.numpy()[0, 0])
  assert out.sum() == pytest.approx(sprite.numpy().sum(), rel=1e-6)


def test_standard_npy(tmp_path):
  array = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8)
  np.save(tmp_path / "mnist_test_seq.npy", array)
  x = _take(moving_mnist_standard(tmp_path / "mnist_test_seq.npy"), 3)
  assert x.shape == (3, 20, 64, 64, 1) and x.dtype == np.float32
  np.testing.assert_allclose(x[1, :, :, :, 0], array[:, 1] / 255.0, rtol=1e-6)


def test_standard_npy_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.npy"):
    moving_mnist_standard(tmp_path / "missing.npy")
  np.save(tmp_path / "bad.npy", np.zeros((3, 4), np.float32))
  with pytest.raises(ValueError, match="bad.npy"):
    moving_mnist_standard(tmp_path / "bad.npy")


def test_tfds_mock():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=2):
    x = _take(moving_mnist_tfds("test"), 2)
  assert x.shape == (2, 20, 64, 64, 1) and x.dtype == np.float32
  assert x.min() >= 0.0 and x.max() <= 1.0
