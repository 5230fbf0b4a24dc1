"""Throughput of the tfmvae.data pipelines (sequences or examples per second).

Measures, after a warm-up, batches of `--batch_size` pulled from:
- moving_mnist train, stochastic (SM-MNIST) and deterministic, 64x64, 20 frames, 2 digits;
- moving_shapes train, 64x64, 20 frames, 1 shape, gray and RGB;
- shapes_pairs and mnist_pairs (examples/s).
Each figure is the median of `--repeats` timed runs of `--batches` batches; the
load average is recorded since other processes may share the CPU.

Usage: TFMVAE_MNIST_DIR=/path/to/mnist python bench/data_pipeline.py
Writes bench/results/data_pipeline.json.
"""
import json
import os
import pathlib
import platform
import statistics
import time

from absl import app
from absl import flags

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 100, "Batch size of the timed pipelines.")
_BATCHES = flags.DEFINE_integer("batches", 30, "Batches per timed run.")
_OUTPUT = flags.DEFINE_string(
    "output", str(pathlib.Path(__file__).parent / "results" / "data_pipeline.json"),
    "JSON file to write.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per pipeline (median reported).")


def _pipelines():
  from tfmvae import data  # pylint: disable=g-import-not-at-top
  return {
      "moving_mnist_train_stochastic_64x64x20": lambda: data.moving_mnist(
          "train", stochastic=True),
      "moving_mnist_train_deterministic_64x64x20": lambda: data.moving_mnist("train"),
      "moving_shapes_train_stochastic_64x64x20_gray": lambda: data.moving_shapes(
          "train", stochastic=True),
      "moving_shapes_train_stochastic_64x64x20_rgb": lambda: data.moving_shapes(
          "train", stochastic=True, channels=3),
      "shapes_pairs_train_32x32": lambda: data.shapes_pairs("train"),
      "mnist_pairs_train_repeat": lambda: data.mnist_pairs("train").repeat(),
  }


def _rate(make, batch_size: int, batches: int, repeats: int) -> dict:
  iterator = iter(make().batch(batch_size))
  for _ in range(5):
    next(iterator)
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(batches):
      next(iterator)
    rates.append(batch_size * batches / (time.perf_counter() - start))
  return {"median_per_s": round(statistics.median(rates), 1),
          "runs_per_s": [round(r, 1) for r in rates]}


def main(argv):
  del argv
  load_before = os.getloadavg()
  results = {}
  for name, make in _pipelines().items():
    results[name] = _rate(make, _BATCH_SIZE.value, _BATCHES.value, _REPEATS.value)
    print(f"{name:48s} {results[name]['median_per_s']:9.1f} /s  "
          f"(runs {results[name]['runs_per_s']})")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  report = {
      "benchmark": "data_pipeline",
      "unit": "sequences (videos) or examples (pairs) per second, batched",
      "batch_size": _BATCH_SIZE.value,
      "batches_per_run": _BATCHES.value,
      "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor(),
                  "platform": platform.platform(), "gpu": bool(tf.config.list_physical_devices("GPU")),
                  "tensorflow": tf.__version__},
      "load_average_before": [round(x, 2) for x in load_before],
      "load_average_after": [round(x, 2) for x in os.getloadavg()],
      "results": results,
  }
  path = pathlib.Path(_OUTPUT.value)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(report, indent=2) + "\n")
  print(f"Load average before {report['load_average_before']}, after "
        f"{report['load_average_after']}. Wrote {path}")


if __name__ == "__main__":
  app.run(main)
