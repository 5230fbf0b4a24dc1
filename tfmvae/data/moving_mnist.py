"""Moving MNIST: bouncing MNIST digits, generated on the fly, plus the standard files.

`moving_mnist` generates sequences from the fixed MNIST pools of `load_mnist`
(train sequences use only train digits, validation only validation digits, ...):

- deterministic (`stochastic=False`, Srivastava et al., 2015): each digit starts at a
  uniform position with a uniform direction and speed `0.1 * (image_size -
  digit_size)` pixels per frame (Srivastava's step length 0.1 of the free range),
  and reflects off the walls: velocity constant between bounces.
- stochastic (`stochastic=True`, SM-MNIST of Denton & Fergus, 2018): integer start
  position and integer velocity in `{-4..4}^2`; at every wall contact the
  component is redrawn from `{1..4}` pointing away from the wall and the other from
  `{-4..4}`. SVG itself uses `digit_size=32` (digits resized 28 -> 32, bilinear).
  Differences from SVG's code: overlapping digits combine by max (SVG adds and
  clips), and the upper wall sits at `image_size - digit_size` (SVG: one pixel less).

`train` streams fresh sequences (infinite unless `num_sequences`), reproducible for
a seed; `validation` and `test` are fixed sets (default 1,000 sequences each),
byte-identical on every run for a given seed.

For comparison with published numbers, `moving_mnist_standard(path)` reads the
standard `mnist_test_seq.npy` (uint8 [20, 10000, 64, 64]) and `moving_mnist_tfds`
reads TFDS' `moving_mnist` (the same 10,000 test sequences).
"""
import pathlib

import numpy as np
import tensorflow as tf

from tfmvae.data import mnist
from tfmvae.data import sprites

DEFAULT_FIXED_SIZE = 1000
SRIVASTAVA_STEP = 0.1


def _digit_pool(split: str, digit_size: int, data_dir) -> np.ndarray:
  images, _ = mnist.load_mnist(split, data_dir=data_dir)
  pool = images.astype(np.float32) / 255.0
  if digit_size != pool.shape[-1]:
    pool = tf.image.resize(pool[..., None], (digit_size, digit_size)).numpy()[..., 0]
    pool = np.clip(pool, 0.0, 1.0)
  return pool


def sample_digit_motion(rng: np.random.Generator, batch: int, num_digits: int,
                        seq_len: int, limit: int, stochastic: bool):
  """Digit trajectories for one batch.

  Args:
    rng: NumPy generator.
    batch: number of sequences B.
    num_digits: digits per sequence K.
    seq_len: frames T.
    limit: `image_size - digit_size`.
    stochastic: SM-MNIST rule when True, reflection otherwise.

  Returns:
    (positions float64 [B, T, K, 2], velocities float64 [B, T, K, 2]).
  """
  shape = (batch, num_digits, 2)
  if stochastic:
    start = rng.integers(0, limit, size=shape).astype(np.float64)
    velocity = rng.integers(-sprites.SVG_MAX_SPEED, sprites.SVG_MAX_SPEED + 1,
                            size=shape).astype(np.float64)
    rule = "svg"
  else:
    start = rng.uniform(0.0, limit, size=shape)
    velocity = sprites.random_directions(rng, shape[:2], SRIVASTAVA_STEP * limit)
    rule = "reflect"
  return sprites.bouncing_trajectories(rng, start, velocity, seq_len, limit, rule)


def moving_mnist(split: str, *, num_digits: int = 2, seq_len: int = 20,
                 image_size: int = 64, digit_size: int = 28, stochastic: bool = False,
                 seed: int = 0, num_sequences=None, data_dir=None) -> tf.data.Dataset:
  """Generated Moving MNIST (deterministic) or Stochastic Moving MNIST.

  Args:
    split: `"train"` (streamed), `"validation"` or `"test"` (fixed sets).
    num_digits: digits per sequence.
    seq_len: frames per sequence.
    image_size: side of the square frames.
    digit_size: side the 28x28 digits are resized to (SVG: 32).
    stochastic: SM-MNIST bounces (new random direction at each wall contact).
    seed: integer seed; fixed splits are byte-identical for a seed.
    num_sequences: number of sequences; default: infinite for train, 1,000 else.
    data_dir: MNIST IDX folder (see `load_mnist`).

  Returns:
    Dataset of float32 [seq_len, image_size, image_size, 1] in [0, 1].

  Example:
  >>> ds = moving_mnist("train", stochastic=True).batch(100)
  """
  mnist.check_split(split)
  if num_digits < 1 or seq_len < 1:
    raise ValueError(f"num_digits and seq_len must be >= 1, got {num_digits}, {seq_len}.")
  if digit_size > image_size:
    raise ValueError(f"digit_size {digit_size} exceeds image_size {image_size}.")
  pool = tf.constant(_digit_pool(split, digit_size, data_dir))
  limit = image_size - digit_size
  batch = sprites.GENERATION_BATCH

  def draw(key):
    rng = sprites.batch_rng(key)
    index = rng.integers(0, pool.shape[0], size=(batch, num_digits)).astype(np.int32)
    pos, _ = sample_digit_motion(rng, batch, num_digits, seq_len, limit, stochastic)
    return index, sprites.pixel_positions(pos, limit)

  def make_batch(key):
    index, pos = tf.numpy_function(draw, [key], (tf.int32, tf.int32), stateful=False)
    index = tf.ensure_shape(index, (batch, num_digits))
    pos = tf.ensure_shape(pos, (batch, seq_len, num_digits, 2))
    frames = sprites.paste_sprites(tf.gather(pool, index), pos, image_size)
    return frames[..., None]

  return sprites.generated_dataset(split, seed, num_sequences, DEFAULT_FIXED_SIZE,
                                   make_batch)


def _uint8_frames(x: tf.Tensor) -> tf.Tensor:
  return tf.cast(x, tf.float32) / 255.0


def moving_mnist_standard(path, *, num_sequences=None) -> tf.data.Dataset:
  """The standard Moving MNIST test file `mnist_test_seq.npy` (Srivastava et al.).

  Args:
    path: path of the `.npy` file, uint8 [T, N, H, W] (standard: [20, 10000, 64, 64]).
    num_sequences: keep only the first sequences.

  Returns:
    Dataset of float32 [T, H, W, 1] in [0, 1], in file order.

  Raises:
    FileNotFoundError: missing file.
    ValueError: the array is not uint8 of rank 4.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"Moving MNIST file not found: {path}")
  try:
    array = np.load(path, mmap_mode="r")
  except (ValueError, OSError) as e:
    raise ValueError(f"Cannot read {path} as a .npy array: {e}") from e
  if array.ndim != 4 or array.dtype != np.uint8:
    raise ValueError(
        f"{path} holds {array.dtype} {array.shape}; expected uint8 [T, N, H, W] "
        "such as [20, 10000, 64, 64].")
  t, n, h, w = array.shape
  n = n if num_sequences is None else min(n, num_sequences)

  def read(i):
    return np.ascontiguousarray(array[:, i])

  def load(i):
    x = tf.numpy_function(read, [i], tf.uint8, stateful=False)
    return _uint8_frames(tf.ensure_shape(x, (t, h, w))[..., None])

  ds = tf.data.Dataset.range(n).map(load, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)


def moving_mnist_tfds(split: str = "test", *, data_dir=None, download: bool = True,
                      num_sequences=None) -> tf.data.Dataset:
  """TFDS' `moving_mnist` (the standard 10,000 test sequences; 819 MB download).

  Args:
    split: TFDS split (only `"test"` exists).
    data_dir: TFDS data folder.
    download: let TFDS download and prepare the data when missing.
    num_sequences: keep only the first sequences.

  Returns:
    Dataset of float32 [20, 64, 64, 1] in [0, 1].
  """
  import tensorflow_datasets as tfds  # Deferred: heavy import.
  ds = tfds.load("moving_mnist", split=split, data_dir=data_dir, download=download,
                 shuffle_files=False)
  if num_sequences is not None:
    ds = ds.take(num_sequences)
  ds = ds.map(lambda ex: _uint8_frames(ex["image_sequence"]),
              num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)
