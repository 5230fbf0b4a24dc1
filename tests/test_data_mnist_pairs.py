"""Tests for tfmvae.data.mnist_pairs (image + label with label masks)."""
import numpy as np
import pytest

from tfmvae.data import MNIST_PAIRS_MODALITIES, label_keep_mask, load_mnist, mnist_pairs


def _all(ds):
  return {k: v.numpy() for k, v in next(iter(ds.batch(100000))).items()}


def test_modalities():
  assert MNIST_PAIRS_MODALITIES == ("image", "label")


def test_shapes_values_and_labels():
  x = _all(mnist_pairs("validation"))
  assert x["image"].shape == (1000, 28, 28, 1) and x["image"].dtype == np.float32
  assert 0.0 <= x["image"].min() and x["image"].max() <= 1.0
  images, labels = load_mnist("validation")
  np.testing.assert_allclose(x["image"][..., 0], images / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(x["label"].argmax(-1), labels)
  np.testing.assert_array_equal(x["mask"], 1.0)


def test_label_fraction_masks():
  x = _all(mnist_pairs("test", label_fraction=0.25, seed=3))
  kept = x["mask"][:, 1]
  assert kept.sum() == 250
  np.testing.assert_array_equal(x["mask"][:, 0], 1.0)
  np.testing.assert_array_equal(x["label"][kept == 0], 0.0)
  np.testing.assert_array_equal(x["label"][kept == 1].sum(-1), 1.0)
  y = _all(mnist_pairs("test", label_fraction=0.25, seed=3))
  z = _all(mnist_pairs("test", label_fraction=0.25, seed=4))
  np.testing.assert_array_equal(x["mask"], y["mask"])
  assert (x["mask"] != z["mask"]).any()


def test_keep_mask_bounds():
  assert label_keep_mask(10, 0.0, 0).sum() == 0 and label_keep_mask(10, 1.0, 0).sum() == 10
  with pytest.raises(ValueError, match="label_fraction"):
    label_keep_mask(10, -0.1, 0)
