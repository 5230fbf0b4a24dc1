"""Tests for the PNG/GIF writers, `tfmvae.data.preview` and `tfmvae-preview`."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tfmvae.data
from tfmvae.data import image_grid, save_image_grid, save_video_gif


def test_image_grid_layout():
  images = np.ones((5, 4, 6, 1), np.float32)
  grid = image_grid(images, ncols=3, padding=1)
  assert grid.shape == (2 * 5 + 1, 3 * 7 + 1, 1) and grid.dtype == np.uint8
  assert grid.max() == 255 and grid[0].max() == 0


def test_save_image_grid_and_gif(tmp_path):
  path = save_image_grid(np.random.rand(4, 8, 8, 3), tmp_path / "a" / "grid.png")
  assert Image.open(path).size == (19, 19)
  gif = save_video_gif(np.random.rand(2, 5, 8, 8, 1), tmp_path / "v.gif", fps=10)
  with Image.open(gif) as im:
    assert im.n_frames == 5
  single = save_video_gif(np.random.rand(3, 8, 8, 1), tmp_path / "one.gif")
  with Image.open(single) as im:
    assert im.n_frames == 3
  with pytest.raises(ValueError, match="frames"):
    save_video_gif(np.zeros((8, 8)), tmp_path / "bad.gif")


def test_preview_function(tmp_path):
  gif = tfmvae.data.preview("moving_shapes", tmp_path / "shapes.png", num=4, seq_len=3)
  assert gif.suffix == ".gif"
  with Image.open(gif) as im:
    assert im.n_frames == 3
  png = tfmvae.data.preview("mnist_pairs", tmp_path / "pairs", num=9)
  assert png.suffix == ".png" and Image.open(png).size == (88, 88)
  with pytest.raises(ValueError, match="valid datasets"):
    tfmvae.data.preview("imagenet", tmp_path / "x.png")


def test_cli_main(tmp_path):
  """The binary on Moving MNIST (a subprocess: binaries' flags share one registry)."""
  out = tmp_path / "mm.gif"
  result = subprocess.run(
      [sys.executable, "-m", "tfmvae.bin.preview", "--dataset=moving_mnist",
       f"--output={out}", "--num=2", "--split=test"],
      capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  assert out.is_file() and "Wrote" in result.stdout


def test_cli_default_run_needs_no_download(tmp_path):
  """The binary with default flags (moving_shapes) on a machine without data."""
  out = tmp_path / "preview.gif"
  result = subprocess.run(
      [sys.executable, "-m", "tfmvae.bin.preview", f"--output={out}", "--num=2"],
      capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  with Image.open(out) as im:
    assert im.n_frames == 20
