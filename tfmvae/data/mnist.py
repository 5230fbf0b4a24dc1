"""MNIST digits from IDX files, split into fixed, disjoint train/validation/test pools.

Where the files come from, in order:

1. `data_dir`, when given;
2. the directory in the environment variable `TFMVAE_MNIST_DIR`;
3. Keras' download cache (`keras.datasets.mnist.load_data()`, which fetches and
   caches `mnist.npz` under `~/.keras/datasets`).

A directory holds the standard IDX files, gzipped (`t10k-images-idx3-ubyte.gz`) or
raw (`t10k-images-idx3-ubyte`; `t10k-images.idx3-ubyte` is accepted too).

Split rule (documented, deterministic, disjoint pools):

- Only the 10,000-digit test set (`t10k-*`) present ("t10k" layout): digits
  0-7,999 by file index are `train`, 8,000-8,999 `validation`, 9,000-9,999 `test`.
- The 60,000-digit training files (`train-*`) present too, or the Keras download
  ("full" layout): the classic 55,000 / 5,000 / 10,000 split: `train` is training
  digits 0-54,999, `validation` training digits 55,000-59,999 and `test` the whole
  t10k set. Numbers are then comparable with published MNIST results.

Errors name the offending file: a missing file raises `FileNotFoundError`; a wrong
magic number, truncated or corrupt gzip, a size that disagrees with the header, or
image and label files of different lengths raise `ValueError`.
"""
import functools
import gzip
import os
import pathlib

import numpy as np

MNIST_SPLITS = ("train", "validation", "test")
MNIST_DIR_ENV = "TFMVAE_MNIST_DIR"
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
# Index boundaries of the pools when only t10k is available.
T10K_SPLIT = {"train": (0, 8000), "validation": (8000, 9000), "test": (9000, 10000)}
# Boundaries inside the 60,000 training digits for the "full" layout.
FULL_TRAIN_SPLIT = {"train": (0, 55000), "validation": (55000, 60000)}


def check_split(split: str) -> None:
  """Raises `ValueError` naming the valid splits when `split` is not one."""
  if split not in MNIST_SPLITS:
    raise ValueError(f"Unknown split {split!r}; valid splits are {list(MNIST_SPLITS)}.")


def read_idx(path) -> np.ndarray:
  """Reads an IDX file (gzipped or raw) of unsigned bytes into a uint8 array.

  Args:
    path: path of the file; gzip is detected from its first two bytes.

  Returns:
    uint8 array whose shape is the one stored in the header.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: unreadable gzip, wrong magic number or wrong payload size.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"MNIST file not found: {path}")
  raw = path.read_bytes()
  if raw[:2] == b"\x1f\x8b":
    try:
      raw = gzip.decompress(raw)
    except (EOFError, OSError, gzip.BadGzipFile) as e:
      raise ValueError(f"Corrupt or truncated gzip file {path}: {e}") from e
  if len(raw) < 4:
    raise ValueError(f"File {path} is too short for an IDX header ({len(raw)} bytes).")
  magic = int.from_bytes(raw[:4], "big")
  if magic >> 8 != 0x08 or magic & 0xFF not in (1, 3):
    raise ValueError(
        f"Wrong magic number {magic} in {path}: expected {LABEL_MAGIC} (labels) or "
        f"{IMAGE_MAGIC} (images).")
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise ValueError(f"Truncated IDX header in {path}.")
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  expected = int(np.prod(shape))
  if len(raw) - header != expected:
    raise ValueError(
        f"File {path} holds {len(raw) - header} data bytes but its header {shape} "
        f"needs {expected}: truncated or corrupt.")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _find(directory: pathlib.Path, prefix: str, kind: str):
  """Returns the first existing spelling of an MNIST file, or None."""
  for name in (f"{prefix}-{kind}", f"{prefix}-{kind.replace('-', '.', 1)}"):
    for suffix in (".gz", ""):
      if (directory / (name + suffix)).is_file():
        return directory / (name + suffix)
  return None


def read_mnist_pair(directory, prefix: str):
  """Reads `<prefix>-images-idx3-ubyte[.gz]` and its labels from `directory`.

  Args:
    directory: folder holding the IDX files.
    prefix: `"t10k"` or `"train"`.

  Returns:
    (images uint8 [N, 28, 28], labels int64 [N]).
  """
  directory = pathlib.Path(directory)
  paths = {}
  for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
    found = _find(directory, prefix, kind)
    if found is None:
      raise FileNotFoundError(
          f"MNIST file not found: {directory / (prefix + '-' + kind)}[.gz]")
    paths[kind] = found
  images = read_idx(paths["images-idx3-ubyte"])
  labels = read_idx(paths["labels-idx1-ubyte"])
  if images.ndim != 3:
    raise ValueError(
        f"{paths['images-idx3-ubyte']} is not an image file (magic {IMAGE_MAGIC}).")
  if labels.ndim != 1:
    raise ValueError(
        f"{paths['labels-idx1-ubyte']} is not a label file (magic {LABEL_MAGIC}).")
  if len(images) != len(labels):
    raise ValueError(
        f"Count mismatch: {paths['images-idx3-ubyte']} has {len(images)} images but "
        f"{paths['labels-idx1-ubyte']} has {len(labels)} labels.")
  return images, labels.astype(np.int64)


@functools.lru_cache(maxsize=4)
def _load_directory(directory: str):
  """Returns {split: (images, labels)} for a directory (cached per path)."""
  directory = pathlib.Path(directory)
  test_x, test_y = read_mnist_pair(directory, "t10k")
  if _find(directory, "train", "images-idx3-ubyte") is not None:
    train_x, train_y = read_mnist_pair(directory, "train")
    return _full_layout(train_x, train_y, test_x, test_y)
  out = {}
  for split, (lo, hi) in T10K_SPLIT.items():
    out[split] = (test_x[lo:hi], test_y[lo:hi])
  return out


def _full_layout(train_x, train_y, test_x, test_y):
  out = {s: (train_x[lo:hi], train_y[lo:hi]) for s, (lo, hi) in FULL_TRAIN_SPLIT.items()}
  out["test"] = (test_x, test_y.astype(np.int64))
  return out


@functools.lru_cache(maxsize=1)
def _load_keras():
  import keras  # Deferred: only this fallback needs it.
  try:
    (train_x, train_y), (test_x, test_y) = keras.datasets.mnist.load_data()
  except Exception as e:  # Keras raises a bare Exception on fetch failures.
    raise FileNotFoundError(
        "MNIST not found: no data_dir given, $" + MNIST_DIR_ENV + " unset, and the "
        f"Keras download/cache (~/.keras/datasets/mnist.npz) failed: {e}") from e
  return _full_layout(train_x, train_y.astype(np.int64), test_x, test_y)


def load_mnist(split: str, data_dir=None):
  """Loads one fixed MNIST pool.

  Args:
    split: one of `MNIST_SPLITS` (`"train"`, `"validation"`, `"test"`).
    data_dir: folder of IDX files; defaults to `$TFMVAE_MNIST_DIR`, then Keras'
      download cache.

  Returns:
    (images uint8 [N, 28, 28], labels int64 [N]), fresh numpy copies.

  Raises:
    ValueError: unknown split, or a corrupt file (the message names it).
    FileNotFoundError: a needed file is missing from the chosen folder.
  """
  check_split(split)
  directory = data_dir if data_dir is not None else os.environ.get(MNIST_DIR_ENV)
  if directory:
    pools = _load_directory(str(pathlib.Path(directory).resolve()))
  else:
    pools = _load_keras()
  images, labels = pools[split]
  return images.copy(), labels.copy()
