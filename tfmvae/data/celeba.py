"""CelebA faces + binary attributes, from TFDS `celeb_a` or from the raw files.

Sources (`celeba(..., data_dir=...)`):

- Raw folder: `data_dir` holding `img_align_celeba/*.jpg` and `list_attr_celeba.txt`
  (top level or under `Anno/`), optionally `list_eval_partition.txt` (top level or
  under `Eval/`; rows `<file> <0|1|2>` for train/validation/test). Without the
  partition file the official partition is applied by image number: 1-162,770
  train, 162,771-182,637 validation, 182,638-202,599 test (the rule the partition
  file encodes).
- Otherwise TFDS `celeb_a` in `data_dir` (TFDS' default folder when None); offline,
  put the downloaded files under their `checksums.tsv` names in `manual_dir`.

Attribute file format: line 1 the image count, line 2 the 40 attribute names, then
one row per image: file name and 40 values in {-1, 1}, separated by spaces.

Images: the largest centered square is cropped (178x178 for aligned CelebA), resized
(bilinear, antialiased) to `image_size`: float32 [S, S, 3] in [0, 1]. This equals
the MVAE code's Resize(64) + CenterCrop(64) up to interpolation.

`attributes="mvae18"` selects the 18 attributes of Wu & Goodman (2018), verified in
their code (mhw32/multimodal-vae-public, celeba/datasets.py, ATTR_IX_TO_KEEP =
[4, 5, 8, 9, 11, 12, 15, 17, 18, 20, 21, 22, 26, 28, 31, 32, 33, 35], after Perarnau
et al., 2016): `MVAE18_ATTRIBUTES`. Note it includes Straight_Hair and Wearing_Hat,
not No_Beard or Young. `"all"` gives the 40 in file order; a list of names selects
those. Elements: {"image", "attributes": float32 [A] in {0, 1}, "mask": [2]} with
modality order `CELEBA_MODALITIES`.
"""
import pathlib
from typing import Sequence, Union

import numpy as np
import tensorflow as tf

from tfmvae.data import mnist

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
    "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry",
    "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee",
    "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young")
MVAE18_INDICES = (4, 5, 8, 9, 11, 12, 15, 17, 18, 20, 21, 22, 26, 28, 31, 32, 33, 35)
MVAE18_ATTRIBUTES = tuple(CELEBA_ATTRIBUTES[i] for i in MVAE18_INDICES)
CELEBA_MODALITIES = ("image", "attributes")
# Official partition by image number (inclusive bounds).
CELEBA_PARTITION = {"train": (1, 162770), "validation": (162771, 182637),
                    "test": (182638, 202599)}
_PARTITION_CODES = {"train": 0, "validation": 1, "test": 2}


def resolve_attributes(attributes: Union[str, Sequence[str]],
                       available: Sequence[str] = CELEBA_ATTRIBUTES,
                       source: str = "CelebA") -> tuple:
  """Names selected by `"mvae18"`, `"all"` or an explicit list.

  Raises:
    ValueError: an unknown preset or attribute name (named in the message).
  """
  if isinstance(attributes, str):
    if attributes == "mvae18":
      names = MVAE18_ATTRIBUTES
    elif attributes == "all":
      names = tuple(available)
    else:
      raise ValueError(f"Unknown attribute preset {attributes!r}: use 'mvae18', 'all' "
                       "or a list of attribute names.")
  else:
    names = tuple(attributes)
  unknown = [n for n in names if n not in available]
  if unknown:
    raise ValueError(f"Unknown CelebA attribute(s) {unknown} (not in {source}); "
                     f"valid names: {list(available)}.")
  if not names:
    raise ValueError("Select at least one attribute.")
  return names


def _lines(path: pathlib.Path) -> list:
  if not path.is_file():
    raise FileNotFoundError(f"CelebA attribute file not found: {path}")
  try:
    return path.read_text().splitlines()
  except UnicodeDecodeError as e:
    raise ValueError(f"CelebA attribute file {path} is not text: {e}") from e


def _header(lines: list, path) -> tuple:
  if len(lines) < 2:
    raise ValueError(f"CelebA attribute file {path} is too short: it needs a count "
                     "line and an attribute-name line.")
  try:
    count = int(lines[0].strip())
  except ValueError:
    raise ValueError(f"Line 1 of CelebA attribute file {path} should be the image "
                     f"count, got {lines[0][:40]!r}.") from None
  names = lines[1].split()
  if not names or len(set(names)) != len(names):
    raise ValueError(f"Line 2 of CelebA attribute file {path} should list distinct "
                     "attribute names.")
  return count, names


def read_celeba_attribute_names(path) -> tuple:
  """(declared image count, attribute names) from the header of `list_attr_celeba.txt`."""
  path = pathlib.Path(path)
  count, names = _header(_lines(path), path)
  return count, names


def read_celeba_attributes(path, check_count: bool = True):
  """Parses `list_attr_celeba.txt`.

  Args:
    path: attribute file.
    check_count: require as many rows as line 1 declares (False for a file's head).

  Returns:
    (file names list [N], attribute names list [40], int8 values [N, 40] in {-1, 1}).

  Raises:
    FileNotFoundError: missing file.
    ValueError: malformed header or row, values outside {-1, 1}, or a row count
      that disagrees with the header (the message names the file and line).
  """
  path = pathlib.Path(path)
  lines = _lines(path)
  count, names = _header(lines, path)
  files, rows = [], []
  for number, line in enumerate(lines[2:], start=3):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != len(names) + 1:
      raise ValueError(f"Line {number} of CelebA attribute file {path} has "
                       f"{len(fields) - 1} values, expected {len(names)}.")
    files.append(fields[0])
    rows.append(fields[1:])
  try:
    values = np.asarray(rows, dtype=np.int8).reshape(len(rows), len(names))
  except ValueError as e:
    raise ValueError(f"Non-integer attribute value in {path}: {e}") from e
  bad = np.argwhere((values != 1) & (values != -1))
  if len(bad):
    raise ValueError(f"Line {bad[0][0] + 3} of CelebA attribute file {path}: values "
                     "must be -1 or 1.")
  if check_count and len(files) != count:
    raise ValueError(f"CelebA attribute file {path} declares {count} images but has "
                     f"{len(files)} rows: truncated or corrupt.")
  return files, names, values


def _first(directory: pathlib.Path, names: Sequence[str]):
  for name in names:
    if (directory / name).is_file():
      return directory / name
  return None


def _raw_split(files: list, split: str, partition_file) -> np.ndarray:
  """Boolean [N] selecting `split` by partition file or by image number."""
  if partition_file is not None:
    table = {}
    for number, line in enumerate(partition_file.read_text().splitlines(), start=1):
      fields = line.split()
      if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
        if fields:
          raise ValueError(f"Line {number} of partition file {partition_file} should "
                           "be '<file> <0|1|2>'.")
        continue
      table[fields[0]] = int(fields[1])
    missing = [f for f in files if f not in table]
    if missing:
      raise ValueError(f"{missing[0]} is missing from partition file {partition_file}.")
    return np.asarray([table[f] == _PARTITION_CODES[split] for f in files], bool)
  lo, hi = CELEBA_PARTITION[split]
  try:
    numbers = np.asarray([int(pathlib.Path(f).stem) for f in files])
  except ValueError:
    raise ValueError("Image names are not CelebA numbers: add list_eval_partition.txt "
                     "to choose the splits.") from None
  return (numbers >= lo) & (numbers <= hi)


def preprocess_face(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """uint8 [H, W, 3] -> center square crop -> float32 [S, S, 3] in [0, 1]."""
  shape = tf.shape(image)
  side = tf.minimum(shape[0], shape[1])
  top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
  crop = tf.image.crop_to_bounding_box(image, top, left, side, side)
  crop = tf.cast(crop, tf.float32) / 255.0
  out = tf.image.resize(crop, (image_size, image_size), antialias=True)
  return tf.clip_by_value(tf.ensure_shape(out, (image_size, image_size, 3)), 0.0, 1.0)


def _example(image, attributes):
  return {"image": image, "attributes": attributes,
          "mask": tf.ones([len(CELEBA_MODALITIES)], tf.float32)}


def celeba_raw(split: str, data_dir, *, image_size: int = 64,
               attributes="mvae18") -> tf.data.Dataset:
  """CelebA from a raw folder (see module docstring); file order, finite."""
  mnist.check_split(split)
  root = pathlib.Path(data_dir)
  attr_file = _first(root, ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt"))
  if attr_file is None:
    raise FileNotFoundError(f"CelebA attribute file not found: {root / 'list_attr_celeba.txt'}")
  image_dir = root / "img_align_celeba"
  if not image_dir.is_dir():
    raise FileNotFoundError(f"CelebA image folder not found: {image_dir}")
  files, names, values = read_celeba_attributes(attr_file)
  selected = resolve_attributes(attributes, names, str(attr_file))
  columns = [names.index(n) for n in selected]
  partition = _first(root, ("list_eval_partition.txt", "Eval/list_eval_partition.txt"))
  keep = _raw_split(files, split, partition)
  paths = np.asarray([str(image_dir / f) for f in files])[keep]
  targets = (values[keep][:, columns] > 0).astype(np.float32)

  def load(path, target):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    return _example(preprocess_face(image, image_size), target)

  ds = tf.data.Dataset.from_tensor_slices((paths, targets))
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)


def celeba_tfds(split: str, *, data_dir=None, manual_dir=None, image_size: int = 64,
                attributes="mvae18", download: bool = True) -> tf.data.Dataset:
  """CelebA through TFDS `celeb_a` (manual_dir: offline files by checksums.tsv name)."""
  import tensorflow_datasets as tfds  # Deferred: heavy import.
  mnist.check_split(split)
  selected = resolve_attributes(attributes)
  kwargs = {}
  if manual_dir is not None:
    kwargs["download_and_prepare_kwargs"] = {
        "download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir))}
  ds = tfds.load("celeb_a", split=split, data_dir=data_dir, download=download,
                 shuffle_files=False, **kwargs)

  def convert(ex):
    target = tf.stack([tf.cast(ex["attributes"][n], tf.float32) for n in selected])
    return _example(preprocess_face(ex["image"], image_size), target)

  ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)


def celeba(split: str, *, data_dir=None, manual_dir=None, image_size: int = 64,
           attributes="mvae18") -> tf.data.Dataset:
  """CelebA images and attributes: raw folder when `data_dir` is one, else TFDS.

  Args:
    split: `"train"`, `"validation"` or `"test"`.
    data_dir: raw CelebA folder, or TFDS data folder.
    manual_dir: TFDS manual download folder (offline `celeb_a` files).
    image_size: output side S.
    attributes: `"mvae18"`, `"all"` or a list of names.

  Returns:
    Finite dataset of {"image": float32 [S, S, 3], "attributes": float32 [A],
    "mask": float32 [2]} (modality order `CELEBA_MODALITIES`).
  """
  mnist.check_split(split)
  if data_dir is not None:
    root = pathlib.Path(data_dir)
    if (root / "img_align_celeba").is_dir() or _first(
        root, ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt")) is not None:
      return celeba_raw(split, root, image_size=image_size, attributes=attributes)
  return celeba_tfds(split, data_dir=data_dir, manual_dir=manual_dir,
                     image_size=image_size, attributes=attributes)
