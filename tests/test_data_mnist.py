"""Tests for tfmvae.data.mnist (IDX reader, fixed disjoint pools, errors)."""
import gzip
import hashlib
import os

import numpy as np
import pytest

from tfmvae.data import mnist


def write_idx(path, array, magic=None, compress=True, truncate=0):
  """Writes uint8 `array` as an IDX file (gzipped unless `compress=False`)."""
  array = np.asarray(array, np.uint8)
  magic = magic if magic is not None else 0x0800 + array.ndim
  header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
  raw = header + array.tobytes()
  raw = raw[:len(raw) - truncate]
  path.write_bytes(gzip.compress(raw, compresslevel=1) if compress else raw)


def write_mnist(directory, n=20, prefix="t10k", compress=True):
  images = np.arange(n * 28 * 28).reshape(n, 28, 28) % 256
  suffix = ".gz" if compress else ""
  write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
  write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10,
            compress=compress)
  return directory


def _shared_dir():
  directory = os.environ.get(mnist.MNIST_DIR_ENV)
  if not directory or not os.path.isfile(os.path.join(directory, "t10k-images-idx3-ubyte.gz")):
    pytest.skip("Real MNIST t10k files not available.")
  return directory


@pytest.mark.parametrize("split,size", [("train", 8000), ("validation", 1000), ("test", 1000)])
def test_real_t10k_pools(split, size):
  images, labels = mnist.load_mnist(split, data_dir=_shared_dir())
  assert images.shape == (size, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (size,) and labels.min() >= 0 and labels.max() <= 9


def test_real_pools_are_disjoint_and_follow_index_rule():
  directory = _shared_dir()
  full = mnist.read_idx(os.path.join(directory, "t10k-images-idx3-ubyte.gz"))
  digests = {}
  for split, (lo, hi) in mnist.T10K_SPLIT.items():
    images, _ = mnist.load_mnist(split, data_dir=directory)
    np.testing.assert_array_equal(images, full[lo:hi])
    digests[split] = {hashlib.md5(x.tobytes()).hexdigest() for x in images}
  assert not digests["train"] & digests["validation"]
  assert not digests["train"] & digests["test"]
  assert not digests["validation"] & digests["test"]


def test_env_var_is_used(monkeypatch, tmp_path):
  write_mnist(tmp_path, n=10000)
  monkeypatch.setenv(mnist.MNIST_DIR_ENV, str(tmp_path))
  images, _ = mnist.load_mnist("validation")
  assert images.shape == (1000, 28, 28)


def test_raw_uncompressed_files(tmp_path):
  write_mnist(tmp_path, n=10000, compress=False)
  images, labels = mnist.load_mnist("test", data_dir=tmp_path)
  assert images.shape == (1000, 28, 28) and labels[0] == 9000 % 10


def test_full_layout_when_train_files_present(tmp_path):
  write_mnist(tmp_path, n=100)
  write_mnist(tmp_path, n=60000, prefix="train")
  sizes = {s: len(mnist.load_mnist(s, data_dir=tmp_path)[0]) for s in mnist.MNIST_SPLITS}
  assert sizes == {"train": 55000, "validation": 5000, "test": 100}


def test_keras_fallback(monkeypatch):
  import keras
  monkeypatch.delenv(mnist.MNIST_DIR_ENV, raising=False)
  mnist._load_keras.cache_clear()
  fake = np.zeros((60000, 28, 28), np.uint8), np.zeros(60000, np.uint8)
  test = np.ones((10000, 28, 28), np.uint8), np.ones(10000, np.uint8)
  monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: (fake, test))
  try:
    images, labels = mnist.load_mnist("test")
    assert images.shape == (10000, 28, 28) and labels.dtype == np.int64
  finally:
    mnist._load_keras.cache_clear()


def test_unknown_split():
  with pytest.raises(ValueError, match="valid splits.*train.*validation.*test"):
    mnist.load_mnist("training")


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
    mnist.load_mnist("test", data_dir=tmp_path)


def test_truncated_gzip(tmp_path):
  write_mnist(tmp_path)
  path = tmp_path / "t10k-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:-30])
  with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz"):
    mnist.load_mnist("test", data_dir=tmp_path)


def test_truncated_payload(tmp_path):
  write_mnist(tmp_path)
  write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((20, 28, 28)), truncate=5)
  with pytest.raises(ValueError, match="truncated or corrupt"):
    mnist.load_mnist("test", data_dir=tmp_path)


def test_wrong_magic(tmp_path):
  write_mnist(tmp_path)
  write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(20), magic=1234)
  with pytest.raises(ValueError, match="magic.*t10k-labels"):
    mnist.load_mnist("test", data_dir=tmp_path)


def test_swapped_files_rejected(tmp_path):
  write_mnist(tmp_path)
  write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros(20))
  with pytest.raises(ValueError, match="not an image file"):
    mnist.load_mnist("test", data_dir=tmp_path)


def test_count_mismatch(tmp_path):
  write_mnist(tmp_path)
  write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(19))
  with pytest.raises(ValueError, match="Count mismatch.*20 images.*19 labels"):
    mnist.load_mnist("test", data_dir=tmp_path)
