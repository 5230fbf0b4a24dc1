"""Moving Shapes: procedural, download-free videos of bouncing sprites with attributes.

Each sequence shows `num_shapes` sprites on black, bouncing inside the frame
(`stochastic=False`: reflection, velocity constant between bounces; `True`: a new
uniform direction at each wall contact, same speed). Per sprite, each attribute is
drawn uniformly:

- shape: square, circle, triangle (upward, isosceles);
- size: small (`0.3 * image_size` across) or large (`0.5 * image_size`);
- color: `channels=1`: dim (0.5) or bright (1.0) intensity; `channels=3`: red,
  green or blue;
- speed (videos only): slow (`image_size / 32` pixels per frame) or fast
  (`image_size / 16`).

Attribute layout (`shape_attribute_names`): the groups above in that order, each a
one-hot block, e.g. for `channels=1` videos:
`shape_square, shape_circle, shape_triangle, size_small, size_large, color_dim,
color_bright, speed_slow, speed_fast` (A = 9). With several shapes, each block is the
multi-hot union over the sprites (1 when any sprite has that value).

`moving_shapes` yields {"frames": float32 [T, S, S, C], "attributes": float32 [A]};
`shapes_pairs` yields single static images with exact ground truth, as a multimodal
dataset {"image": [S, S, C], "attributes": [A], "mask": [2]} (modality order
`SHAPES_PAIRS_MODALITIES`: image, attributes). `train` streams fresh examples;
`validation` and `test` are fixed (1,000 each by default) and byte-identical per seed.
"""
import numpy as np
import tensorflow as tf

from tfmvae.data import mnist
from tfmvae.data import sprites

SHAPES = ("square", "circle", "triangle")
SIZES = ("small", "large")
SIZE_FRACTIONS = (0.3, 0.5)
GRAY_COLORS = {"dim": (0.5,), "bright": (1.0,)}
RGB_COLORS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
SPEEDS = ("slow", "fast")
SPEED_FRACTIONS = (1.0 / 32.0, 1.0 / 16.0)
SHAPES_PAIRS_MODALITIES = ("image", "attributes")
DEFAULT_FIXED_SIZE = 1000


def _colors(channels: int) -> dict:
  if channels == 1:
    return GRAY_COLORS
  if channels == 3:
    return RGB_COLORS
  raise ValueError(f"channels must be 1 or 3, got {channels}.")


def shape_attribute_names(channels: int = 1, video: bool = True) -> list:
  """Names of the attribute vector entries, in order.

  Args:
    channels: 1 (intensities dim/bright) or 3 (colors red/green/blue).
    video: include the speed block (moving_shapes) or not (shapes_pairs).

  Returns:
    List of strings `"<group>_<value>"`.
  """
  names = [f"shape_{s}" for s in SHAPES] + [f"size_{s}" for s in SIZES]
  names += [f"color_{c}" for c in _colors(channels)]
  if video:
    names += [f"speed_{s}" for s in SPEEDS]
  return names


SHAPE_ATTRIBUTE_NAMES = shape_attribute_names(1, video=True)


def _shape_mask(shape: str, size: int, box: int) -> np.ndarray:
  """Binary float32 [box, box] mask of one shape of side `size`, centered."""
  y, x = np.mgrid[0:box, 0:box].astype(np.float32) + 0.5
  lo = (box - size) / 2.0
  hi = lo + size
  inside = (y >= lo) & (y <= hi) & (x >= lo) & (x <= hi)
  if shape == "circle":
    inside &= (y - box / 2.0) ** 2 + (x - box / 2.0) ** 2 <= (size / 2.0) ** 2
  elif shape == "triangle":
    half_width = (y - lo) / size * (size / 2.0)
    inside &= np.abs(x - box / 2.0) <= half_width
  return inside.astype(np.float32)


def sprite_bank(image_size: int) -> np.ndarray:
  """float32 [len(SHAPES) * len(SIZES), box, box]; index `shape * len(SIZES) + size`."""
  sides = [max(2, int(round(f * image_size))) for f in SIZE_FRACTIONS]
  box = max(sides)
  return np.stack([_shape_mask(s, side, box) for s in SHAPES for side in sides])


def _draw_objects(rng, batch: int, num: int, channels: int, video: bool):
  """Per-sprite attribute indices and the [B, A] multi-hot attribute vector."""
  colors = np.asarray(list(_colors(channels).values()), np.float32)
  shape = rng.integers(0, len(SHAPES), size=(batch, num))
  size = rng.integers(0, len(SIZES), size=(batch, num))
  color = rng.integers(0, len(colors), size=(batch, num))
  blocks = [(shape, len(SHAPES)), (size, len(SIZES)), (color, len(colors))]
  speed = rng.integers(0, len(SPEEDS), size=(batch, num))
  if video:
    blocks.append((speed, len(SPEEDS)))
  attrs = np.concatenate([np.eye(n, dtype=np.float32)[i].max(1) for i, n in blocks], -1)
  sprite = (shape * len(SIZES) + size).astype(np.int32)
  return sprite, colors[color], speed, attrs


def _render(bank, sprite, color, pos, image_size):
  """float32 [B, T, S, S, C] frames, sprites combined by max."""
  shapes = tf.gather(bank, sprite)  # [B, K, box, box]
  b, t, k = pos.shape[0], pos.shape[1], pos.shape[2]
  c = color.shape[-1]
  # Paste each sprite alone (K folded into the batch), color it, max over K.
  pos_k = tf.reshape(tf.transpose(pos, (0, 2, 1, 3)), (b * k, t, 1, 2))
  alone = sprites.paste_sprites(tf.reshape(shapes, (b * k, 1) + tuple(shapes.shape[2:])),
                                pos_k, image_size)  # [B*K, T, S, S]
  # Coloring as a k=1 matmul (outer product): much faster than broadcasting here.
  colored = tf.linalg.matmul(tf.reshape(alone, (b, k, -1, 1)), color[:, :, None, :])
  frames = colored[:, 0] if k == 1 else tf.reduce_max(colored, axis=1)
  return tf.reshape(frames, (b, t, image_size, image_size, c))


def moving_shapes(split: str, *, seq_len: int = 20, image_size: int = 64,
                  num_shapes: int = 1, stochastic: bool = False, seed: int = 0,
                  num_sequences=None, channels: int = 1) -> tf.data.Dataset:
  """Bouncing shapes with their attributes.

  Args:
    split: `"train"` (streamed), `"validation"` or `"test"` (fixed sets).
    seq_len: frames per sequence.
    image_size: side of the square frames.
    num_shapes: sprites per sequence.
    stochastic: new random direction at each bounce.
    seed: integer seed; fixed splits are byte-identical for a seed.
    num_sequences: number of sequences; default: infinite for train, 1,000 else.
    channels: 1 (gray) or 3 (RGB).

  Returns:
    Dataset of {"frames": float32 [seq_len, S, S, channels] in [0, 1],
    "attributes": float32 [A] in {0, 1}} (names: `shape_attribute_names`).
  """
  mnist.check_split(split)
  _colors(channels)
  bank_np = sprite_bank(image_size)
  bank = tf.constant(bank_np)
  limit = image_size - bank_np.shape[-1]
  batch = sprites.GENERATION_BATCH
  num_attrs = len(shape_attribute_names(channels, video=True))

  def draw(key):
    rng = sprites.batch_rng(key)
    sprite, color, speed, attrs = _draw_objects(rng, batch, num_shapes, channels, True)
    start = rng.uniform(0.0, limit, size=(batch, num_shapes, 2))
    velocity = sprites.random_directions(
        rng, (batch, num_shapes), np.asarray(SPEED_FRACTIONS)[speed] * image_size)
    rule = "random_direction" if stochastic else "reflect"
    pos, _ = sprites.bouncing_trajectories(rng, start, velocity, seq_len, limit, rule)
    return sprite, color, sprites.pixel_positions(pos, limit), attrs

  def make_batch(key):
    out = tf.numpy_function(draw, [key], (tf.int32, tf.float32, tf.int32, tf.float32),
                            stateful=False)
    sprite = tf.ensure_shape(out[0], (batch, num_shapes))
    color = tf.ensure_shape(out[1], (batch, num_shapes, channels))
    pos = tf.ensure_shape(out[2], (batch, seq_len, num_shapes, 2))
    attrs = tf.ensure_shape(out[3], (batch, num_attrs))
    return {"frames": _render(bank, sprite, color, pos, image_size), "attributes": attrs}

  return sprites.generated_dataset(split, seed, num_sequences, DEFAULT_FIXED_SIZE,
                                   make_batch)


def shapes_pairs(split: str, *, image_size: int = 32, seed: int = 0, num_examples=None,
                 attribute_fraction: float = 1.0, channels: int = 1) -> tf.data.Dataset:
  """Single shape images with exact attributes, as an image + attributes dataset.

  Args:
    split: `"train"` (streamed), `"validation"` or `"test"` (fixed sets).
    image_size: side of the square images.
    seed: integer seed; fixed splits are byte-identical for a seed.
    num_examples: number of examples; default: infinite for train, 1,000 else.
    attribute_fraction: share of examples that keep their attributes; the others
      get zeros and mask entry 0 (drawn per example from the seeded stream).
    channels: 1 (gray) or 3 (RGB).

  Returns:
    Dataset of {"image": float32 [S, S, C], "attributes": float32 [A],
    "mask": float32 [2]} (order `SHAPES_PAIRS_MODALITIES`; names:
    `shape_attribute_names(channels, video=False)`).
  """
  mnist.check_split(split)
  if not 0.0 <= attribute_fraction <= 1.0:
    raise ValueError(f"attribute_fraction must be in [0, 1], got {attribute_fraction}.")
  _colors(channels)
  bank_np = sprite_bank(image_size)
  bank = tf.constant(bank_np)
  limit = image_size - bank_np.shape[-1]
  batch = sprites.GENERATION_BATCH
  num_attrs = len(shape_attribute_names(channels, video=False))

  def draw(key):
    rng = sprites.batch_rng(key)
    sprite, color, _, attrs = _draw_objects(rng, batch, 1, channels, False)
    pos = rng.integers(0, limit + 1, size=(batch, 1, 1, 2)).astype(np.int32)
    keep = (rng.random(batch) < attribute_fraction).astype(np.float32)
    mask = np.stack([np.ones_like(keep), keep], -1)
    return sprite, color, pos, attrs * keep[:, None], mask

  def make_batch(key):
    out = tf.numpy_function(draw, [key],
                            (tf.int32, tf.float32, tf.int32, tf.float32, tf.float32),
                            stateful=False)
    sprite = tf.ensure_shape(out[0], (batch, 1))
    color = tf.ensure_shape(out[1], (batch, 1, channels))
    pos = tf.ensure_shape(out[2], (batch, 1, 1, 2))
    image = _render(bank, sprite, color, pos, image_size)[:, 0]
    return {"image": image, "attributes": tf.ensure_shape(out[3], (batch, num_attrs)),
            "mask": tf.ensure_shape(out[4], (batch, 2))}

  return sprites.generated_dataset(split, seed, num_examples, DEFAULT_FIXED_SIZE,
                                   make_batch)
