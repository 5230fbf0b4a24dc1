"""GIF of the authors' converted SVG-LP on held-out SM-MNIST sequences.

Rows: test sequences. Columns: ground truth; then, after the 5 true context frames,
the best of 100 samples (by Gaussian SSIM over the 20 predicted frames) with
BatchNorm moving statistics (tfmvae's default) and with the authors' batch
statistics (their generate script; statistics over the 8 sequences of the batch).

  python bench/svg_authors_gif.py --model_dir runs/svg_authors/model --output docs/svg_authors.gif
"""
import argparse

import numpy as np

from tfmvae import metrics
from tfmvae import train_lib
from tfmvae.data.visualize import save_video_gif


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--model_dir", required=True)
  ap.add_argument("--output", required=True)
  ap.add_argument("--rows", type=int, default=3)
  ap.add_argument("--samples", type=int, default=100)
  a = ap.parse_args()
  model, config, _ = train_lib.load_model(a.model_dir)
  frames = np.asarray(train_lib.example_batch(config.replace(eval_future=20), num=8), np.float32)
  n_past = config.n_past
  context, future = frames[:, :n_past], frames[:, n_past:n_past + 20]
  columns = [frames[:a.rows, :n_past + 20]]
  for mode in ("moving", "batch"):
    pred = np.asarray(model.predict(context, 20, num_samples=a.samples, seed=0, batchnorm=mode))
    ssim = metrics.ssim(pred, future[:, None]).numpy().mean(-1)  # [B, S]
    best = pred[np.arange(len(pred)), ssim.argmax(1)]
    columns.append(np.concatenate([context, best], 1)[:a.rows])
  tiles = np.stack(columns, 1).reshape((-1, n_past + 20) + frames.shape[2:])
  print(save_video_gif(tiles, a.output, fps=4.0, ncols=len(columns)))


if __name__ == "__main__":
  main()
