"""Compares SVG-LP, SVG-FP and VideoMVAE (Method I) on Stochastic Moving MNIST.

Every model trains for the same number of steps on the same stream of SM-MNIST
sequences (64x64, 2 digits of 32x32, `tfmvae.data.moving_mnist(stochastic=True)`,
train seed 0), then is evaluated with SVG's best-of-N protocol
(`tfmvae.evaluation_video`): n_past 5, n_future 20 (summaries over the first 10
and all 20 steps), N samples per test sequence, copy-last-frame baseline on the
same test sequences. Writes bench/results/video_compare.json (+ .png plot and
GIFs) and prints a Markdown table.

The paper trains for 300 x 600 steps at batch 100 with 64 filters on a GPU; on
the 2-core CPU this script runs a much smaller budget (see --steps, --batch_size,
--filters), so the figures measure early training only.

Usage: python bench/video_compare.py [--steps 200] [--batch_size 8] [--filters 16]
  --eval_at 1000,2000   also evaluate (and, with --save_dir, checkpoint) at these steps
  --disc_filters 4 --disc_hidden 64 --vaegan_lr 2e-4   Method II's discriminator size
                        and optimizer (Larsen's full-size net is ~15x a Method I step on CPU)
  --init_from CKPT --init_steps K   warm start (e.g. Method II from a Method I
                        checkpoint after K steps): training continues the same stream
                        at batch K, so step counts stay comparable
  --init_from CKPT --init_steps K --steps K --num_samples 100   evaluate a checkpoint
                        only (e.g. with SVG's N = 100 samples), no training
  --deterministic --digit_size 28 --n_past 10 --n_future_train 10 --n_future_eval 10
                        deterministic Moving MNIST 10 -> 10 (the OpenSTL protocol)
"""
import argparse
import inspect
import json
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from tfmvae import data
from tfmvae import evaluation_video
from tfmvae.models import SVG
from tfmvae.models import VideoMVAE
from tfmvae.models import VideoVAEGAN

MACHINE = os.environ.get(
    "TFMVAE_BENCH_MACHINE", "project CPU machine, 2 cores (AMD EPYC, AVX-512), no GPU")
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
_SHARED_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
if "TFMVAE_MNIST_DIR" not in os.environ and _SHARED_MNIST.is_dir():
  os.environ["TFMVAE_MNIST_DIR"] = str(_SHARED_MNIST)  # the offline MNIST files


def make_models(args):
  common = dict(image_size=64, channels=1, filters=args.filters, n_past=args.n_past,
                n_future=args.n_future_train, seed=args.seed)
  mvae = dict(common, z_dim=args.mvae_z_dim)
  method2 = dict(mvae, discriminator_filters=args.disc_filters or args.filters,
                 discriminator_hidden_units=args.disc_hidden, gamma=args.vaegan_gamma,
                 pixel_weight=args.vaegan_pixel_weight)
  return {
      "SVG-LP": lambda: SVG(prior="learned", **common),
      "SVG-FP": lambda: SVG(prior="fixed", **common),
      # SVG's own `--last_frame_skip` option: skips from the previous (generated)
      # frame, the skip source of the best Method I below.
      "SVG-LP-lastskip": lambda: SVG(prior="learned", last_frame_skip=True, **common),
      "SVG-FP-lastskip": lambda: SVG(prior="fixed", last_frame_skip=True, **common),
      "VideoMVAE-fixed-skip": lambda: VideoMVAE(prior="fixed", skip=True, **mvae),
      "VideoMVAE-learned-skip": lambda: VideoMVAE(prior="learned", skip=True, **mvae),
      "VideoMVAE-learned-skip-cross": lambda: VideoMVAE(
          prior="learned", skip=True, cross_reconstruction=True, **mvae),
      "VideoMVAE-learned-prevskip-cross": lambda: VideoMVAE(
          prior="learned", skip=True, skip_source="previous", cross_reconstruction=True,
          **mvae),
      "VideoVAEGAN-learned-prevskip-cross": lambda: VideoVAEGAN(
          prior="learned", skip=True, skip_source="previous", cross_reconstruction=True,
          **method2),
      "VideoMVAE-learned-noskip-cross": lambda: VideoMVAE(
          prior="learned", skip=False, cross_reconstruction=True, **mvae),
      # Method II: Method I + a frame discriminator per decoder, learned similarity.
      "VideoVAEGAN-learned-skip-cross": lambda: VideoVAEGAN(
          prior="learned", skip=True, cross_reconstruction=True,
          **method2),
  }


def warm_start(model, checkpoint, context):
  """Loads the variables of `checkpoint` that `model` shares (by path) into it.

  Checks that it took: the model's predictions equal those of the checkpointed
  model class (SVG for SVG, else Method I) restored the same way (the generation
  path uses shared weights only). The optimizer starts fresh: a continued run is
  not bit-identical to an uninterrupted one.
  """
  reader = tf.train.load_checkpoint(checkpoint)
  names = set(reader.get_variable_to_shape_map())
  tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
  source_class = SVG if isinstance(model, SVG) else VideoMVAE  # Method II: its Method I
  keys = set(inspect.signature(source_class.__init__).parameters) - {"self", "kwargs"}
  source = source_class(**{k: v for k, v in model.get_config().items() if k in keys})
  tf.train.Checkpoint(model=source).read(checkpoint).expect_partial()
  got = model.predict(context, num_future=3, num_samples=2, seed=5).numpy()
  want = source.predict(context, num_future=3, num_samples=2, seed=5).numpy()
  if not np.array_equal(got, want):
    raise RuntimeError(f"warm start from {checkpoint} did not restore the shared weights "
                       f"(max prediction difference {np.abs(got - want).max()})")
  print(f"warm start: {len(names)} checkpoint entries from {checkpoint}; predictions "
        "match the checkpointed model", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--eval_at", default="",
                      help="comma-separated step counts (< --steps) at which to evaluate too; "
                           "training continues on the same stream")
  parser.add_argument("--threads", type=int, default=0,
                      help="TF intra/inter-op threads (0 = TF default)")
  parser.add_argument("--save_dir", default="",
                      help="where to save each model's final weights (optional)")
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--filters", type=int, default=16)
  parser.add_argument("--mvae_z_dim", type=int, default=32)
  parser.add_argument("--vaegan_gamma", type=float, default=1.0,
                      help="Method II: weight of the likelihood terms in the decoder loss")
  parser.add_argument("--vaegan_pixel_weight", type=float, default=1.0,
                      help="Method II: weight of Method I's pixel NLL next to the feature term")
  parser.add_argument("--disc_filters", type=int, default=0,
                      help="Method II: discriminator width F (0 = --filters). Larsen's net "
                           "(5x5 convs, the first at full resolution) costs ~15x a Method I "
                           "step at F = 16 on the CPU; F = 4 with 64 hidden units brings it to ~4x")
  parser.add_argument("--vaegan_lr", type=float, default=0.0,
                      help="Method II: Adam(lr, beta_1 0.5) for its three players (DCGAN's "
                           "2e-4, as flags/mm_method2.flags); 0 = the model's default Adam(1e-3)")
  parser.add_argument("--disc_hidden", type=int, default=512,
                      help="Method II: discriminator dense units (Larsen: 512)")
  parser.add_argument("--n_past", type=int, default=5)
  parser.add_argument("--n_future_train", type=int, default=10)
  parser.add_argument("--n_future_eval", type=int, default=20)
  parser.add_argument("--num_samples", type=int, default=10)
  parser.add_argument("--num_test", type=int, default=48)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--deterministic", action="store_true",
                      help="deterministic Moving MNIST (straight bounces) instead of SM-MNIST")
  parser.add_argument("--digit_size", type=int, default=32,
                      help="digit side (SM-MNIST / SVG: 32; Moving MNIST / OpenSTL: 28)")
  parser.add_argument("--init_from", default="",
                      help="checkpoint (tf.train.Checkpoint prefix) of a trained model whose "
                           "matching variables initialize every model (warm start)")
  parser.add_argument("--init_steps", type=int, default=0,
                      help="batches the --init_from model was trained on: training continues "
                           "the same stream after them and step counts include them")
  parser.add_argument("--models", default="all", help="comma-separated names or 'all'")
  parser.add_argument("--name", default="video_compare")
  parser.add_argument("--output_dir", default=str(RESULTS))
  args = parser.parse_args()
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  eval_at = sorted({int(s) for s in args.eval_at.split(",") if s} | {args.steps})
  eval_at = [t for t in eval_at if t >= args.init_steps]  # a warm start begins there

  factories = make_models(args)
  names = list(factories) if args.models == "all" else args.models.split(",")
  seq_train = args.n_past + args.n_future_train
  seq_test = args.n_past + args.n_future_eval
  stochastic = not args.deterministic
  test = np.stack(list(data.moving_mnist(
      "test", stochastic=stochastic, digit_size=args.digit_size, seq_len=seq_test, seed=1,
      num_sequences=args.num_test).as_numpy_iterator()))
  results, training = {}, {}
  out_dir = pathlib.Path(args.output_dir)
  out_json = out_dir / f"{args.name}.json"
  for name in names:
    keras.utils.set_random_seed(args.seed)  # same initialization stream per model
    model = factories[name]()
    if isinstance(model, VideoVAEGAN) and args.vaegan_lr:
      # One Adam per player (compile clones the encoder's for the others).
      model.compile(encoder_optimizer=keras.optimizers.Adam(args.vaegan_lr, beta_1=0.5))
    else:
      model.compile()
    train = data.moving_mnist("train", stochastic=stochastic, digit_size=args.digit_size,
                              seq_len=seq_train, seed=args.seed).batch(args.batch_size)
    done, train_s = 0, 0.0
    if args.init_from:
      warm_start(model, args.init_from, test[:4, :args.n_past])
      done = args.init_steps
    for target in eval_at:  # train in chunks on the one stream, evaluating after each
      start = time.time()
      hist = {}
      if target > done:  # (--init_steps == --steps: evaluate the checkpoint only)
        hist = model.fit(train.skip(done).take(target - done), epochs=1, verbose=0,
                         shuffle=False).history
      train_s += time.time() - start
      done = target
      key = name if target == args.steps and len(eval_at) == 1 else f"{name}@{target}"
      last = {k: float(v[-1]) for k, v in hist.items()}
      print(f"[{key}] trained {done} steps in {train_s:.0f}s: {last}", flush=True)
      result = evaluation_video.evaluate_video_model(
          model, test, args.n_past, args.n_future_eval, num_samples=args.num_samples,
          seed=args.seed, batch_size=8, num_examples=2)
      s = result["summary"]
      print(f"[{key}] eval {result['seconds']:.0f}s  SSIM@10 best {s['best']['ssim_first10']:.4f} "
            f"mean {s['mean']['ssim_first10']:.4f} copy {s['copy_last']['ssim_first10']:.4f}",
            flush=True)
      results[key] = result
      training[key] = {"steps": done, "train_seconds": train_s, "epoch_mean_metrics": last,
                       "num_params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
                       "config": model.get_config()}
      evaluation_video.write_report(results, out_dir, name=args.name)
      payload = json.loads(out_json.read_text())
      payload = {"models": payload, "training": training, "args": vars(args),
                 "machine": MACHINE}
      out_json.write_text(json.dumps(payload, indent=1, sort_keys=True))
      if args.save_dir:  # weights at every evaluation point (e.g. for --init_from)
        os.makedirs(args.save_dir, exist_ok=True)
        tf.train.Checkpoint(model=model).write(os.path.join(args.save_dir, f"{name}_{done}"))
  print(table(results))


def table(results):
  rows = ["| model | SSIM best@10 | PSNR best@10 | SSIM mean@10 | SSIM best@20 | "
          "PSNR best@20 | MSE best@10 |", "|---|---|---|---|---|---|---|"]
  for name, r in list(results.items()) + [("copy last frame", None)]:
    if r is None:
      r = next(iter(results.values()))
      b = m = r["summary"]["copy_last"]
    else:
      b, m = r["summary"]["best"], r["summary"]["mean"]
    rows.append(f"| {name} | {b['ssim_first10']:.3f} ± {b['ssim_first10_ci95']:.3f} | "
                f"{b['psnr_first10']:.2f} | {m['ssim_first10']:.3f} | {b['ssim_all']:.3f} | "
                f"{b['psnr_all']:.2f} | {b['mse_first10']:.1f} |")
  return "\n".join(rows)


if __name__ == "__main__":
  main()
