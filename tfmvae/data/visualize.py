"""PNG grids and GIF animations of images / videos in [0, 1] (PIL)."""
import math
import pathlib

import numpy as np


def _to_uint8(x) -> np.ndarray:
  x = np.asarray(x, dtype=np.float32)
  return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_grid(images, ncols=None, padding: int = 1) -> np.ndarray:
  """Tiles images into one uint8 array.

  Args:
    images: [N, H, W, C] (C in {1, 3}) floats in [0, 1].
    ncols: columns; default `ceil(sqrt(N))`.
    padding: pixels of black between tiles.

  Returns:
    uint8 [rows * (H + p) + p, ncols * (W + p) + p, C].
  """
  images = _to_uint8(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}.")
  n, h, w, c = images.shape
  ncols = ncols or max(1, math.ceil(math.sqrt(n)))
  nrows = max(1, math.ceil(n / ncols))
  grid = np.zeros((nrows * (h + padding) + padding, ncols * (w + padding) + padding, c),
                  np.uint8)
  for i in range(n):
    r, col = divmod(i, ncols)
    y, x = padding + r * (h + padding), padding + col * (w + padding)
    grid[y:y + h, x:x + w] = images[i]
  return grid


def _pil(array: np.ndarray):
  from PIL import Image  # Deferred: only writers need PIL.
  return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_image_grid(images, path, ncols=None, padding: int = 1) -> pathlib.Path:
  """Writes images [N, H, W, C] in [0, 1] as one PNG grid; returns the path."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  _pil(image_grid(images, ncols, padding)).save(path)
  return path


def save_video_gif(frames, path, fps: float = 8.0, ncols=None, padding: int = 1,
                   loop: int = 0) -> pathlib.Path:
  """Writes a video [T, H, W, C] or a batch [N, T, H, W, C] (as a grid) as a GIF.

  Args:
    frames: floats in [0, 1].
    path: output file.
    fps: frames per second.
    ncols: grid columns for a batch.
    padding: pixels between tiles.
    loop: GIF loop count (0: forever).

  Returns:
    The path written.
  """
  frames = np.asarray(frames, dtype=np.float32)
  if frames.ndim == 4:
    frames = frames[None]
  if frames.ndim != 5:
    raise ValueError(f"frames must be [T, H, W, C] or [N, T, H, W, C], got {frames.shape}.")
  tiles = [_pil(image_grid(frames[:, t], ncols, padding)) for t in range(frames.shape[1])]
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tiles[0].save(path, save_all=True, append_images=tiles[1:],
                duration=int(round(1000.0 / fps)), loop=loop)
  return path
