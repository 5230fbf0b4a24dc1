"""Vectorized bouncing-sprite video engine shared by Moving MNIST and Moving Shapes.

A batch of `B` sequences with `K` sprites each is made in two steps:

1. `bouncing_trajectories` (NumPy, vectorized over `B * K`; a loop over the `T`
   frames only): top-left positions `[B, T, K, 2]` (row, column) in `[0, limit]`,
   where `limit = image_size - sprite_size`, so every sprite stays inside the frame.
2. `paste_sprites` (TensorFlow): each sprite's columns are shifted with a one-hot
   matrix (`sprite @ R_cols`; products with 0/1 and sums of exact zeros are exact
   in float32, whatever the thread count) and its rows with a batched gather, so
   the pasted pixels equal the sprite's bit for bit. Overlapping sprites combine by
   `max`. Whole batches go through a handful of ops: no per-sequence Python.

Physics (the velocity `v` moves a sprite from frame `t` to `t + 1`):
`p <- p + v`; an axis that leaves `[0, limit]` is clamped to the wall and the bounce
rule gives its new velocity:

- `"reflect"` (Srivastava et al., 2015): the component is negated, so the velocity is
  constant between bounces and its per-axis magnitude constant throughout.
- `"svg"` (Denton & Fergus, 2018, SM-MNIST): integer velocities; the bouncing
  component is redrawn from `{1..4}` pointing away from the wall and the other from
  `{-4..4}`.
- `"random_direction"`: a new uniform direction pointing away from the wall, same
  speed (used by Moving Shapes, whose speed is an attribute).
"""
from typing import Callable

import numpy as np
import tensorflow as tf

BOUNCE_RULES = ("reflect", "svg", "random_direction")
SVG_MAX_SPEED = 4
# Internal generation batch: fixed so that fixed splits do not depend on anything else.
GENERATION_BATCH = 50
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


def random_directions(rng: np.random.Generator, shape, speed) -> np.ndarray:
  """Velocities `speed * (sin a, cos a)` with uniform angles; shape `shape + [2]`."""
  angle = rng.uniform(0.0, 2.0 * np.pi, size=shape)
  return np.stack([np.sin(angle), np.cos(angle)], -1) * np.asarray(speed)[..., None]


def _bounce(rule, rng, v, low, high):
  """New velocities [N, 2] after wall contacts `low`/`high` (bool [N, 2])."""
  hit = low | high
  if rule == "reflect":
    return np.where(hit, -v, v)
  away = np.where(low, 1.0, -1.0)
  if rule == "svg":
    own = away * rng.integers(1, SVG_MAX_SPEED + 1, size=v.shape)
    other = rng.integers(-SVG_MAX_SPEED, SVG_MAX_SPEED + 1, size=v.shape)
    other_hit = hit[:, ::-1]
    new = np.where(hit, own, np.where(other_hit, other, v))
    return new.astype(v.dtype)
  if rule == "random_direction":
    speed = np.linalg.norm(v, axis=-1)
    new = random_directions(rng, v.shape[:1], speed)
    new = np.where(hit, away * np.abs(new), new)
    return np.where(hit.any(-1, keepdims=True), new, v)
  raise ValueError(f"Unknown bounce rule {rule!r}; valid rules are {list(BOUNCE_RULES)}.")


def bouncing_trajectories(rng: np.random.Generator, start: np.ndarray,
                          velocity: np.ndarray, seq_len: int, limit: float,
                          rule: str = "reflect"):
  """Rolls out bouncing sprites, vectorized over sequences and sprites.

  Args:
    rng: NumPy generator (used by the random bounce rules).
    start: float [B, K, 2] top-left positions in `[0, limit]`.
    velocity: float [B, K, 2] initial velocities (pixels per frame).
    seq_len: number of frames T.
    limit: largest allowed coordinate (`image_size - sprite_size`).
    rule: one of `BOUNCE_RULES`.

  Returns:
    (positions float64 [B, T, K, 2], velocities float64 [B, T, K, 2]); velocity
    `t` moves the sprite from frame `t` to frame `t + 1`.
  """
  if rule not in BOUNCE_RULES:
    raise ValueError(f"Unknown bounce rule {rule!r}; valid rules are {list(BOUNCE_RULES)}.")
  b, k = start.shape[:2]
  p = start.reshape(b * k, 2).astype(np.float64)
  v = velocity.reshape(b * k, 2).astype(np.float64)
  positions, velocities = [p], [v]
  for _ in range(seq_len - 1):
    p = p + v
    low, high = p < 0.0, p > limit
    p = np.clip(p, 0.0, limit)
    v = _bounce(rule, rng, v, low, high)
    positions.append(p)
    velocities.append(v)
  shape = (b, k, seq_len, 2)
  pos = np.stack(positions, 1).reshape(shape).transpose(0, 2, 1, 3)
  vel = np.stack(velocities, 1).reshape(shape).transpose(0, 2, 1, 3)
  return pos, vel


def pixel_positions(positions: np.ndarray, limit: int) -> np.ndarray:
  """Rounds float positions to int32 pixel offsets in `[0, limit]`."""
  return np.clip(np.rint(positions), 0, limit).astype(np.int32)


def paste_sprites(sprites: tf.Tensor, positions: tf.Tensor, image_size: int) -> tf.Tensor:
  """Places sprites on black canvases and combines them by max.

  Columns are placed by a one-hot shift matrix (`sprite @ R_cols`), rows by a
  batched gather from the shifted sprite padded with one zero row. Both steps are
  exact: the pasted pixels equal the sprite's.

  Args:
    sprites: float32 [B, K, h, w] sprite images (one per sequence and sprite).
    positions: int32 [B, T, K, 2] top-left (row, column), within the frame.
    image_size: side S of the square canvas.

  Returns:
    float32 [B, T, S, S] frames.
  """
  h, w = sprites.shape[-2], sprites.shape[-1]
  cols = positions[..., 1:2] + tf.range(w, dtype=tf.int32)  # [B, T, K, w]
  shift_cols = tf.one_hot(cols, image_size, dtype=tf.float32)  # [B, T, K, w, S]
  placed = tf.linalg.matmul(sprites[:, None], shift_cols)  # [B, T, K, h, S]
  placed = tf.pad(placed, [[0, 0], [0, 0], [0, 0], [0, 1], [0, 0]])  # Zero row h.
  source = tf.range(image_size, dtype=tf.int32) - positions[..., 0:1]  # [B, T, K, S]
  source = tf.where((source >= 0) & (source < h), source, h)
  canvas = tf.gather(placed, source, axis=3, batch_dims=3)  # [B, T, K, S, S]
  return tf.reduce_max(canvas, axis=2)


def seed_dataset(split: str, seed: int, num_items, default_size: int) -> tf.data.Dataset:
  """Dataset of int64 [3] batch seeds `(seed, split code, batch key)`.

  `train` with `num_items=None` is infinite, and freshly random on every iteration
  (still reproducible for a seed); a fixed split (or a given `num_items`) has
  `ceil(n / GENERATION_BATCH)` seeds, identical on every run for a seed.
  """
  code = _SPLIT_CODES[split]
  if split == "train":
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    keys = keys.map(lambda x: tf.bitwise.bitwise_and(x, tf.constant(2**62 - 1, tf.int64)))
    if num_items is not None:
      keys = keys.take(-(-num_items // GENERATION_BATCH))
  else:
    n = default_size if num_items is None else num_items
    keys = tf.data.Dataset.range(-(-n // GENERATION_BATCH))
  return keys.map(lambda key: tf.stack([tf.constant(seed, tf.int64),
                                        tf.constant(code, tf.int64), key]))


def batch_rng(key) -> np.random.Generator:
  """NumPy generator from a `seed_dataset` element."""
  return np.random.default_rng([int(x) % 2**63 for x in np.asarray(key)])


def generated_dataset(split: str, seed: int, num_items, default_size: int,
                      make_batch: Callable) -> tf.data.Dataset:
  """Maps `make_batch(key) -> batched structure` over batch seeds, then unbatches.

  Args:
    split: `"train"`, `"validation"` or `"test"`.
    seed: integer seed.
    num_items: number of elements, or None (train: infinite; else `default_size`).
    default_size: size of fixed splits when `num_items` is None.
    make_batch: TF-traceable function of an int64 [3] key returning tensors with a
      leading batch dimension of `GENERATION_BATCH`.

  Returns:
    The unbatched, prefetched dataset.
  """
  if split not in _SPLIT_CODES:
    raise ValueError(f"Unknown split {split!r}; valid splits are {list(_SPLIT_CODES)}.")
  ds = seed_dataset(split, seed, num_items, default_size)
  ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.unbatch()
  n = num_items if num_items is not None else (None if split == "train" else default_size)
  if n is not None:
    ds = ds.take(n)
  return ds.prefetch(tf.data.AUTOTUNE)
