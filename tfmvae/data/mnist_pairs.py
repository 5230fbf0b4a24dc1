"""MNIST image + label pairs for multimodal (MVAE) training, with partial labels.

Elements: {"image": float32 [28, 28, 1] in [0, 1], "label": float32 [10] one-hot,
"mask": float32 [2]} with modality order `MNIST_PAIRS_MODALITIES` (image, label).
A deterministic (per seed) share `1 - label_fraction` of the examples, exactly
`round((1 - label_fraction) * N)` of them, loses its label: zeros and mask `[1, 0]`.
The dataset is in pool order and finite: shuffle, repeat and batch it yourself
(the masks travel with their examples).
"""
import numpy as np
import tensorflow as tf

from tfmvae.data import mnist

MNIST_PAIRS_MODALITIES = ("image", "label")
NUM_CLASSES = 10
_CHUNK = 500


def label_keep_mask(num_examples: int, label_fraction: float, seed: int) -> np.ndarray:
  """float32 [N] with exactly `round(label_fraction * N)` ones at seeded positions."""
  if not 0.0 <= label_fraction <= 1.0:
    raise ValueError(f"label_fraction must be in [0, 1], got {label_fraction}.")
  keep = np.zeros(num_examples, np.float32)
  order = np.random.default_rng(seed).permutation(num_examples)
  keep[order[:int(round(label_fraction * num_examples))]] = 1.0
  return keep


def mnist_pairs(split: str, *, label_fraction: float = 1.0, seed: int = 0,
                data_dir=None) -> tf.data.Dataset:
  """MNIST digits with one-hot labels and a modality mask.

  Args:
    split: `"train"`, `"validation"` or `"test"` (pools of `load_mnist`).
    label_fraction: share of examples that keep their label.
    seed: seed choosing which examples keep their label.
    data_dir: MNIST IDX folder (see `load_mnist`).

  Returns:
    Finite dataset of {"image", "label", "mask"} (see module docstring).
  """
  images, labels = mnist.load_mnist(split, data_dir=data_dir)
  keep = label_keep_mask(len(images), label_fraction, seed)

  def convert(image, label, keep):
    return {
        "image": tf.cast(image, tf.float32)[..., None] / 255.0,
        "label": tf.one_hot(label, NUM_CLASSES, dtype=tf.float32) * keep[:, None],
        "mask": tf.stack([tf.ones_like(keep), keep], axis=-1),
    }

  # Convert vectorized over chunks, then unbatch: far cheaper than one map call
  # per example, and the element order is unchanged.
  ds = tf.data.Dataset.from_tensor_slices((images, labels, keep)).batch(_CHUNK)
  ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
  return ds.prefetch(tf.data.AUTOTUNE)
