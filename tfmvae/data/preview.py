"""`preview(name, output)`: a PNG grid (images) or GIF (videos) of any dataset."""
import inspect
import pathlib

import numpy as np

# Functions imported by name: the package re-exports them under their modules' names.
from tfmvae.data.celeba import celeba
from tfmvae.data.mnist_pairs import mnist_pairs
from tfmvae.data.moving_mnist import moving_mnist, moving_mnist_standard, moving_mnist_tfds
from tfmvae.data.moving_shapes import moving_shapes, shapes_pairs
from tfmvae.data.visualize import save_image_grid, save_video_gif

DATASETS = {
    "moving_shapes": moving_shapes,
    "shapes_pairs": shapes_pairs,
    "moving_mnist": moving_mnist,
    "moving_mnist_standard": moving_mnist_standard,
    "moving_mnist_tfds": moving_mnist_tfds,
    "mnist_pairs": mnist_pairs,
    "celeba": celeba,
}
# Size arguments the generated datasets accept, filled with `num` to stay fast.
_SIZE_ARGS = ("num_sequences", "num_examples")


def make_dataset(name: str, *, split: str = "test", seed: int = 0, num=None, **kwargs):
  """Builds dataset `name` of `DATASETS`, passing split/seed/size where accepted."""
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; valid datasets are {sorted(DATASETS)}.")
  fn = DATASETS[name]
  params = inspect.signature(fn).parameters
  args = dict(kwargs)
  if "split" in params:
    args.setdefault("split", split)
  if "seed" in params:
    args.setdefault("seed", seed)
  for size in _SIZE_ARGS:
    if size in params and num is not None:
      args.setdefault(size, num)
  return fn(**args)


def _visual(batch) -> np.ndarray:
  if isinstance(batch, dict):
    for key in ("frames", "image"):
      if key in batch:
        return np.asarray(batch[key])
    raise ValueError(f"No 'frames' or 'image' key in dataset elements: {list(batch)}.")
  return np.asarray(batch)


def preview(dataset_name: str, output, *, split: str = "test", num: int = 16,
            seed: int = 0, fps: float = 8.0, **kwargs) -> pathlib.Path:
  """Writes `num` examples of a dataset: PNG grid for images, GIF grid for videos.

  Args:
    dataset_name: a key of `DATASETS` (e.g. `"moving_shapes"`, needs no download).
    output: file to write; a video's suffix becomes `.gif`, an image's `.png`
      unless it already names an image format PIL knows.
    split: split to show (where the dataset has splits).
    num: number of examples.
    seed: seed (where the dataset takes one).
    fps: GIF frame rate.
    **kwargs: passed to the dataset function (e.g. `stochastic=True`, `path=`).

  Returns:
    The path written.
  """
  ds = make_dataset(dataset_name, split=split, seed=seed, num=num, **kwargs)
  batch = next(iter(ds.take(num).batch(num)))
  array = _visual(batch)
  output = pathlib.Path(output)
  if array.ndim == 5:
    return save_video_gif(array, output.with_suffix(".gif"), fps=fps)
  if output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
    output = output.with_suffix(".png")
  return save_image_grid(array, output)
