"""Training throughput (frames/s) and peak memory of the video models' train step.

Paper configuration by default (SVG's SM-MNIST setting): batch 100, 15 frames
(n_past 5 + n_future 10), 64x64x1, DCGAN filters 64. Each model runs in its own
subprocess (so peak RSS is per model): one warm-up step (tracing + first run,
reported separately), then --steps timed steps of the compiled train step
(`tf.function(model.train_step)`, what `fit` runs) on random frames.

Measured: frames/s = batch * T / mean timed step time (every frame of the batch,
including the context frames); peak memory = `resource.getrusage(RUSAGE_SELF)
.ru_maxrss` of the subprocess (whole-process peak resident set: TF runtime +
weights + optimizer + activations), and the RSS before the model was built.
A subprocess may run under an address-space limit (--mem_limit_gb) so that an
oversized configuration fails cleanly instead of starving the shared machine.

Usage: python bench/video_throughput.py [--batch_size 100] [--steps 2]
       on a GPU machine: --mem_limit_gb 0 (peak GPU memory is reported as peak_gpu_mib)
"""
import argparse
import json
import os
import pathlib
import resource
import signal
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
MODELS = ("SVG-LP", "SVG-FP", "VideoMVAE-fixed-skip", "VideoMVAE-learned-skip-cross",
          "VideoVAEGAN-learned-skip-cross")


def build(name, filters):
  from tfmvae.models import SVG  # pylint: disable=import-outside-toplevel
  from tfmvae.models import VideoMVAE  # pylint: disable=import-outside-toplevel
  if name == "SVG-LP":
    return SVG(prior="learned", filters=filters)
  if name == "SVG-FP":
    return SVG(prior="fixed", filters=filters)
  if name == "VideoMVAE-fixed-skip":
    return VideoMVAE(prior="fixed", filters=filters)
  if name == "VideoMVAE-learned-skip-cross":
    return VideoMVAE(prior="learned", cross_reconstruction=True, filters=filters)
  if name == "VideoVAEGAN-learned-skip-cross":  # Method II, Larsen's discriminator (F = 32)
    from tfmvae.models import VideoVAEGAN  # pylint: disable=import-outside-toplevel
    return VideoVAEGAN(prior="learned", cross_reconstruction=True, filters=filters)
  raise ValueError(f"unknown model {name!r}")


def _gpu_peak_mib(tf):
  """Peak device memory of GPU:0 in MiB (TF's allocator statistics), None without a GPU."""
  if not tf.config.list_physical_devices("GPU"):
    return None
  return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def _rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(args):
  """Child process: measures one model and prints one JSON line."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rss_before = _rss_mib()
  model = build(args.model, args.filters)
  model.compile()
  if getattr(model, "optimizer", None) is not None:  # Method II builds its three in compile
    model.optimizer.build(model.trainable_variables)
  step = tf.function(model.train_step)
  frames = tf.random.uniform([args.batch_size, args.seq_len, 64, 64, 1], seed=0)
  def run():  # Method II's logs have no "loss" (one loss per player): wait on any
    logs = step(frames)
    return float(logs["loss" if "loss" in logs else sorted(logs)[0]])

  start = time.time()
  run()
  warmup = time.time() - start
  times = []
  for _ in range(args.steps):
    start = time.time()
    run()
    times.append(time.time() - start)
  mean = sum(times) / len(times)
  print("RESULT " + json.dumps({
      "model": args.model, "batch_size": args.batch_size, "seq_len": args.seq_len,
      "filters": args.filters, "warmup_step_s": warmup, "step_s": times,
      "frames_per_s": args.batch_size * args.seq_len / mean,
      "sequences_per_s": args.batch_size / mean,
      "peak_rss_mib": _rss_mib(), "rss_before_model_mib": rss_before,
      "peak_gpu_mib": _gpu_peak_mib(tf),
      "num_params": int(sum(v.numpy().size for v in model.trainable_variables))}), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--batch_size", type=int, default=100)
  parser.add_argument("--seq_len", type=int, default=15)
  parser.add_argument("--filters", type=int, default=64)
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--mem_limit_gb", type=float, default=16.0,
                      help="address-space limit of each model's subprocess; 0 = none (GPU)")
  parser.add_argument("--output", default=str(RESULTS / "video_throughput.json"))
  parser.add_argument("--append", action="store_true",
                      help="add to the runs already in --output instead of replacing them")
  args = parser.parse_args()
  if args.model:
    run_one(args)
    return

  output = pathlib.Path(args.output)
  runs = []
  if args.append and output.exists():
    previous = json.loads(output.read_text())
    runs = previous.get("runs", [])
    for run in runs:  # older files kept one machine line for all runs
      run.setdefault("machine", previous.get("machine", "unknown"))
  results = []
  machine = os.environ.get("TFMVAE_BENCH_MACHINE",
                           "project CPU machine, 2 cores (AMD EPYC, AVX-512), no GPU")
  run_args = {k: v for k, v in vars(args).items() if k != "model"}
  repo = RESULTS.parent.parent
  out_path = pathlib.Path(args.output).resolve()
  run_args["output"] = (str(out_path.relative_to(repo)) if out_path.is_relative_to(repo)
                        else out_path.name)  # no machine paths in results
  runs.append({"args": run_args,
               "machine": machine, "results": results})
  for name in args.models.split(","):
    cmd = [sys.executable, __file__, "--model", name, "--batch_size", str(args.batch_size),
           "--seq_len", str(args.seq_len), "--filters", str(args.filters),
           "--steps", str(args.steps)]
    limit = int(args.mem_limit_gb * 2**30)

    def set_limit(limit=limit):
      if limit > 0:  # 0: no limit (on a GPU machine, CUDA reserves a huge address space)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=set_limit,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), check=False)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode == 0 and lines:
      result = json.loads(lines[-1][len("RESULT "):])
    else:
      errors = [l for l in proc.stderr.splitlines()
                if ("Error" in l or "bad_alloc" in l) and "cuInit" not in l]
      message = (errors or proc.stderr.strip().splitlines() or [""])[-1][:300]
      if proc.returncode < 0:  # killed by a signal (e.g. SIGSEGV when an allocation fails)
        message = f"{signal.Signals(-proc.returncode).name}; {message}"
      result = {"model": name, "batch_size": args.batch_size,
                "error": f"exit {proc.returncode}: {message}"}
    result["wall_s"] = time.time() - start
    print(json.dumps(result), flush=True)
    results.append(result)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({
        "runs": runs,
        "machine": machine,
        "measured": "frames/s of tf.function(train_step) after one warm-up step; "
                    "peak RSS (ru_maxrss) of a per-model subprocess"}, indent=1))


if __name__ == "__main__":
  main()
