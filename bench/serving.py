"""Serving benchmark: the exported `predict_next_frames` signature vs. the Keras model.

For each model (default: SVG-LP at its SM-MNIST size, 64x64x1; --models=svg,video_mvae
adds VideoMVAE; untrained weights: latency does not depend on the values), exports a SavedModel
with `tfmvae.export`, reloads it with `tf.saved_model.load`, and times

  latency:    batch 1, 5 context frames -> 10 future frames; p50 / p99 over
              --latency_calls calls (30: p99 is close to the max) after --warmup calls;
  throughput: batch 64, same lengths; sequences per second over --throughput_calls
              (2, after 1 warm-up: a batch-64 call takes seconds on 2 CPU cores);

through the signature and through `model.predict(context, 10, seed=...)` (the
Keras path, itself a tf.function), interleaving the two paths call by call so that
both see the same load (the machine is shared). Prints a table and writes JSON to --output.
In-process calls only: no HTTP/gRPC or JSON cost (see docs/serving.md).

Usage:
  python bench/serving.py [--models=svg,video_mvae] [--output=bench/results/serving.json]
"""
import json
import os
import platform
import tempfile
import time

from absl import app
from absl import flags

_MODELS = flags.DEFINE_list("models", ["svg"], "Models: svg, video_mvae.")
_OUTPUT = flags.DEFINE_string("output", "bench/results/serving.json", "JSON output path.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed batch-1 calls before timing.")
_LATENCY_CALLS = flags.DEFINE_integer("latency_calls", 30, "Timed batch-1 calls.")
_THROUGHPUT_WARMUP = flags.DEFINE_integer("throughput_warmup", 1,
                                          "Untimed batch-64 calls before timing.")
_THROUGHPUT_CALLS = flags.DEFINE_integer("throughput_calls", 2, "Timed batch-64 calls.")
_CONTEXT = flags.DEFINE_integer("context", 5, "Context frames.")
_FUTURE = flags.DEFINE_integer("future", 10, "Predicted frames.")
_BATCH = flags.DEFINE_integer("batch", 64, "Throughput batch size.")


def _build(name):
  from tfmvae.models.svg import SVG  # pylint: disable=g-import-not-at-top
  from tfmvae.models.video_mvae import VideoMVAE  # pylint: disable=g-import-not-at-top
  if name == "svg":
    return SVG(prior="learned", image_size=64, channels=1, seed=0)  # SM-MNIST SVG-LP sizes.
  if name == "video_mvae":
    return VideoMVAE(prior="learned", image_size=64, channels=1, seed=0)
  raise ValueError(f"unknown model {name!r}")


def _paired_times(fns, warmup, calls):
  """Times each of `fns` ({name: fn}) `calls` times, interleaved (A B A B ...), so
  that both paths see the same machine load (this machine is shared)."""
  for _ in range(warmup):
    for fn in fns.values():
      fn()
  out = {name: [] for name in fns}
  for _ in range(calls):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      out[name].append(time.perf_counter() - start)
  return out


def _percentile(values, q):
  import numpy as np  # pylint: disable=g-import-not-at-top
  return float(np.percentile(np.asarray(values), q))


def bench_model(name, export_dir):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfmvae import export  # pylint: disable=g-import-not-at-top
  model = _build(name)
  start = time.perf_counter()
  path = export.export_model(model, export_dir, name)
  export_s = time.perf_counter() - start
  start = time.perf_counter()
  signature = tf.saved_model.load(path).signatures["predict_next_frames"]
  load_s = time.perf_counter() - start
  rng = np.random.default_rng(0)
  seed = np.array([1, 2], np.int32)
  result = {"model": type(model).__name__, "params": int(model.count_params()),
            "export_s": round(export_s, 2), "load_s": round(load_s, 2),
            "saved_model_mb": round(sum(os.path.getsize(os.path.join(d, f))
                                        for d, _, fs in os.walk(path) for f in fs) / 2**20, 2)}
  for batch, warmup, calls, key in (
      (1, _WARMUP.value, _LATENCY_CALLS.value, "latency"),
      (_BATCH.value, _THROUGHPUT_WARMUP.value, _THROUGHPUT_CALLS.value, "throughput")):
    frames = rng.random((batch, _CONTEXT.value, 64, 64, 1), np.float32)
    tensors = {"frames": tf.constant(frames), "num_future": tf.constant(_FUTURE.value),
               "seed": tf.constant(seed)}
    paths = {
        "exported": lambda: signature(**tensors)["frames"].numpy(),
        "keras": lambda: model.predict(frames, _FUTURE.value, seed=seed).numpy(),
    }
    a, b = paths["exported"](), paths["keras"]()[:, 0]
    result[f"max_abs_diff_batch{batch}"] = float(np.abs(a - b).max())
    timed = _paired_times(paths, warmup, calls)
    ratios = [e / k for e, k in zip(timed["exported"], timed["keras"])]
    result[f"exported_over_keras_time_batch{batch}"] = {
        "median_of_paired_ratios": round(_percentile(ratios, 50), 3)}
    for path_name, times in timed.items():
      if key == "latency":
        result[f"{path_name}_latency_ms"] = {
            "p50": round(1e3 * _percentile(times, 50), 2),
            "p99": round(1e3 * _percentile(times, 99), 2),
            "mean": round(1e3 * sum(times) / len(times), 2), "calls": calls}
      else:
        result[f"{path_name}_throughput"] = {
            "sequences_per_s": round(batch * calls / sum(times), 1),
            "frames_per_s": round(batch * calls * _FUTURE.value / sum(times), 1),
            "s_per_call": round(sum(times) / calls, 3), "batch": batch, "calls": calls}
  return result


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  started = time.time()
  results = {
      "benchmark": "predict_next_frames: exported SavedModel vs Keras model.predict",
      "setup": {"context_frames": _CONTEXT.value, "future_frames": _FUTURE.value,
                "frame": [64, 64, 1], "latency_batch": 1, "throughput_batch": _BATCH.value,
                "latency_calls": _LATENCY_CALLS.value, "warmup_calls": _WARMUP.value,
                "throughput_calls": _THROUGHPUT_CALLS.value,
                "throughput_warmup_calls": _THROUGHPUT_WARMUP.value,
                "weights": "untrained (random init)"},
      "machine": {"platform": platform.platform(), "processor": platform.processor(),
                  "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(),
                  "gpu": [d.name for d in tf.config.list_physical_devices("GPU")],
                  "tensorflow": tf.__version__, "keras": keras.__version__},
      "models": {},
  }
  with tempfile.TemporaryDirectory() as export_dir:
    for name in _MODELS.value:
      results["models"][name] = r = bench_model(name, export_dir)
      print(f"{name}: batch 1 p50/p99 exported {r['exported_latency_ms']['p50']}/"
            f"{r['exported_latency_ms']['p99']} ms, keras {r['keras_latency_ms']['p50']}/"
            f"{r['keras_latency_ms']['p99']} ms; batch {_BATCH.value}: exported "
            f"{r['exported_throughput']['sequences_per_s']} seq/s, keras "
            f"{r['keras_throughput']['sequences_per_s']} seq/s", flush=True)
  results["machine"]["load_average_at_end"] = os.getloadavg()
  results["wall_s"] = round(time.time() - started, 1)
  os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    json.dump(results, f, indent=2)
  print(f"Wrote {_OUTPUT.value} ({results['wall_s']} s)")


if __name__ == "__main__":
  app.run(main)
