"""Tests for the procedural Moving Shapes videos and shape image/attribute pairs."""
import numpy as np
import pytest

from tfmvae.data.moving_shapes import (SHAPE_ATTRIBUTE_NAMES, moving_shapes,
                                       shape_attribute_names, shapes_pairs, sprite_bank)


def _take(ds, n):
  return {k: v.numpy() for k, v in next(iter(ds.take(n).batch(n))).items()}


def test_attribute_names():
  assert SHAPE_ATTRIBUTE_NAMES == [
      "shape_square", "shape_circle", "shape_triangle", "size_small", "size_large",
      "color_dim", "color_bright", "speed_slow", "speed_fast"]
  assert len(shape_attribute_names(3, video=False)) == 8


@pytest.mark.parametrize("channels", [1, 3])
def test_video_shapes_and_one_hot_blocks(channels):
  ds = moving_shapes("test", seq_len=4, image_size=32, num_sequences=6, channels=channels,
                     stochastic=True)
  x = _take(ds, 6)
  assert x["frames"].shape == (6, 4, 32, 32, channels) and x["frames"].dtype == np.float32
  assert x["frames"].min() >= 0.0 and x["frames"].max() <= 1.0
  attrs = x["attributes"]
  assert attrs.shape == (6, len(shape_attribute_names(channels))) and attrs.dtype == np.float32
  assert set(np.unique(attrs)) <= {0.0, 1.0}
  bounds = np.cumsum([0, 3, 2, 2 if channels == 1 else 3, 2])
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    np.testing.assert_array_equal(attrs[:, lo:hi].sum(-1), 1.0)


def test_attributes_match_pixels():
  x = _take(moving_shapes("validation", seq_len=2, num_sequences=40), 40)
  names = SHAPE_ATTRIBUTE_NAMES
  peak = x["frames"].max(axis=(1, 2, 3, 4))
  bright = x["attributes"][:, names.index("color_bright")] == 1
  np.testing.assert_allclose(peak[bright], 1.0)
  np.testing.assert_allclose(peak[~bright], 0.5)
  area = (x["frames"][:, 0] > 0).sum(axis=(1, 2, 3))
  large = x["attributes"][:, names.index("size_large")] == 1
  square = x["attributes"][:, names.index("shape_square")] == 1
  assert area[large & square].min() > area[~large & square].max()


def test_fixed_split_byte_identical_and_train_streams():
  a = _take(moving_shapes("test", seq_len=3, num_sequences=55, seed=7), 55)
  b = _take(moving_shapes("test", seq_len=3, num_sequences=55, seed=7), 55)
  assert a["frames"].tobytes() == b["frames"].tobytes()
  np.testing.assert_array_equal(a["attributes"], b["attributes"])
  train = moving_shapes("train", seq_len=3, num_sequences=5)
  assert _take(train, 5)["frames"].tobytes() != _take(train, 5)["frames"].tobytes()


def test_two_shapes_multi_hot():
  x = _take(moving_shapes("test", seq_len=2, num_shapes=2, num_sequences=50), 50)
  shape_block = x["attributes"][:, :3].sum(-1)
  assert shape_block.min() >= 1 and shape_block.max() <= 2


def test_sprite_bank():
  bank = sprite_bank(32)
  assert bank.shape == (6, 16, 16) and set(np.unique(bank)) == {0.0, 1.0}


def test_shapes_pairs():
  x = _take(shapes_pairs("test", num_examples=200, attribute_fraction=0.5), 200)
  assert x["image"].shape == (200, 32, 32, 1) and x["mask"].shape == (200, 2)
  np.testing.assert_array_equal(x["mask"][:, 0], 1.0)
  kept = x["mask"][:, 1] == 1
  assert 0.3 < kept.mean() < 0.7
  np.testing.assert_array_equal(x["attributes"][~kept], 0.0)
  np.testing.assert_array_equal(x["attributes"][kept].sum(-1), 3.0)
  y = _take(shapes_pairs("test", num_examples=200, attribute_fraction=0.5), 200)
  assert x["image"].tobytes() == y["image"].tobytes()
  np.testing.assert_array_equal(x["mask"], y["mask"])


def test_errors():
  with pytest.raises(ValueError, match="valid splits"):
    moving_shapes("dev")
  with pytest.raises(ValueError, match="channels"):
    shapes_pairs("test", channels=2)
  with pytest.raises(ValueError, match="attribute_fraction"):
    shapes_pairs("test", attribute_fraction=1.5)
