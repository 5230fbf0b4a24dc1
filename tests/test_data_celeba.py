"""Tests for tfmvae.data.celeba: attribute file parsing, raw folder, TFDS path."""
import pathlib

import numpy as np
import pytest

from tfmvae.data import (CELEBA_ATTRIBUTES, MVAE18_ATTRIBUTES, celeba,
                         read_celeba_attribute_names, read_celeba_attributes,
                         resolve_attributes)

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "shared/data/celeba/list_attr_celeba.head.txt"


def write_celeba(root, numbers=(1, 2, 3, 162771, 182638), partition=None, size=(24, 20)):
  """Tiny CelebA folder: JPEGs (H, W) = size and a real-format attribute file."""
  from PIL import Image
  (root / "img_align_celeba").mkdir(parents=True)
  rng = np.random.default_rng(0)
  lines = [str(len(numbers)), " ".join(CELEBA_ATTRIBUTES) + " "]
  values = rng.choice([-1, 1], size=(len(numbers), 40))
  for number, row in zip(numbers, values):
    name = f"{number:06d}.jpg"
    pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "img_align_celeba" / name)
    lines.append(name + " " + " ".join(f"{v:2d}" for v in row))
  (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
  if partition is not None:
    text = "".join(f"{n:06d}.jpg {p}\n" for n, p in zip(numbers, partition))
    (root / "list_eval_partition.txt").write_text(text)
  return values


def _all(ds):
  return {k: v.numpy() for k, v in next(iter(ds.batch(1000))).items()}


def test_mvae18_list():
  assert len(MVAE18_ATTRIBUTES) == 18
  assert MVAE18_ATTRIBUTES[:3] == ("Bald", "Bangs", "Black_Hair")
  assert {"Straight_Hair", "Wearing_Hat"} <= set(MVAE18_ATTRIBUTES)


def test_shared_sample_header():
  if not SAMPLE.is_file():
    pytest.skip("Shared CelebA sample not available.")
  count, names = read_celeba_attribute_names(SAMPLE)
  assert count == 202599 and tuple(names) == CELEBA_ATTRIBUTES
  files, names, values = read_celeba_attributes(SAMPLE, check_count=False)
  assert files[0] == "000001.jpg" and values.shape == (200, 40)
  assert values[0, names.index("Attractive")] == 1 and values[0, 0] == -1
  with pytest.raises(ValueError, match="declares 202599 images but has 200 rows"):
    read_celeba_attributes(SAMPLE)


def test_raw_folder_by_image_number(tmp_path):
  values = write_celeba(tmp_path)
  x = _all(celeba("train", data_dir=tmp_path, image_size=8))
  assert x["image"].shape == (3, 8, 8, 3) and x["image"].dtype == np.float32
  assert 0.0 <= x["image"].min() and x["image"].max() <= 1.0
  assert x["attributes"].shape == (3, 18)
  columns = [CELEBA_ATTRIBUTES.index(n) for n in MVAE18_ATTRIBUTES]
  np.testing.assert_array_equal(x["attributes"], values[:3, columns] > 0)
  np.testing.assert_array_equal(x["mask"], 1.0)
  assert len(_all(celeba("validation", data_dir=tmp_path))["image"]) == 1
  assert len(_all(celeba("test", data_dir=tmp_path))["image"]) == 1


def test_raw_folder_partition_file_and_attribute_lists(tmp_path):
  values = write_celeba(tmp_path, partition=(2, 0, 1, 0, 2))
  x = _all(celeba("test", data_dir=tmp_path, attributes="all", image_size=4))
  np.testing.assert_array_equal(x["attributes"], values[[0, 4]] > 0)
  y = _all(celeba("train", data_dir=tmp_path, attributes=["Smiling", "Male"]))
  assert y["image"].shape == (2, 64, 64, 3)
  np.testing.assert_array_equal(y["attributes"], values[[1, 3]][:, [31, 20]] > 0)


def test_center_crop():
  import tensorflow as tf
  from tfmvae.data.celeba import preprocess_face
  image = np.zeros((30, 10, 3), np.uint8)
  image[10:20] = 255  # The centered 10x10 square is white, the rest black.
  out = preprocess_face(tf.constant(image), 5).numpy()
  np.testing.assert_allclose(out, 1.0)


def test_unknown_attribute(tmp_path):
  write_celeba(tmp_path)
  with pytest.raises(ValueError, match="Unknown CelebA attribute.*Purple_Hair"):
    celeba("train", data_dir=tmp_path, attributes=["Smiling", "Purple_Hair"])
  with pytest.raises(ValueError, match="preset"):
    resolve_attributes("mvae40")


def test_missing_and_corrupt_attribute_file(tmp_path):
  write_celeba(tmp_path)
  path = tmp_path / "list_attr_celeba.txt"
  lines = path.read_text().splitlines()
  path.write_text("\n".join(lines[:3] + [lines[3][:30]]))
  with pytest.raises(ValueError, match="Line 4 of CelebA attribute file.*list_attr_celeba"):
    celeba("train", data_dir=tmp_path)
  path.write_text("\n".join(["many"] + lines[1:]))
  with pytest.raises(ValueError, match="Line 1.*list_attr_celeba"):
    celeba("train", data_dir=tmp_path)
  path.write_text("\n".join(lines[:2] + [lines[2].replace(" 1", " 7", 1)] + lines[3:]))
  with pytest.raises(ValueError, match="-1 or 1"):
    read_celeba_attributes(path)
  path.unlink()
  with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
    celeba("train", data_dir=tmp_path)
  with pytest.raises(FileNotFoundError, match="nothing.txt"):
    read_celeba_attributes(tmp_path / "nothing.txt")


def test_unknown_split(tmp_path):
  with pytest.raises(ValueError, match="valid splits"):
    celeba("valid", data_dir=tmp_path)


def test_tfds_mock():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=2):
    x = _all(celeba("validation", image_size=16, attributes=["Smiling", "Young"]))
  assert x["image"].shape == (2, 16, 16, 3) and x["attributes"].shape == (2, 2)
  assert set(np.unique(x["attributes"])) <= {0.0, 1.0}
  np.testing.assert_array_equal(x["mask"], 1.0)
