"""Where the time of a Method II (VideoVAEGAN) train step goes, on CPU.

Times, on one thread, with one batch of random sparse 64x64 frames (batch 8,
15 frames, frame filters 16, SM-MNIST settings of bench/video_compare.py):

  m1_forward          Method I's teacher-forced terms (`compute_terms`)
  m1_train_step       Method I's `train_step` (one loss, one optimizer)
  m2_forward          Method II's terms (`adversarial_terms`: Method I's terms +
                      decoded prior samples + both discriminators on real,
                      reconstructed and prior frames)
  m2_forward_plus_encoder_grad   + the encoder player's gradient only
  m2_encoder_and_decoder_grads   + the encoder's and the decoder's gradients
                      (one persistent tape, two `tape.gradient` calls)
  m2_all_player_grads_no_update  + all four players' gradients, no update
  m2_single_backward_lower_bound + ONE gradient of the summed losses w.r.t. all
                      variables (not a valid update: a lower bound on any
                      single-backward scheme)
  m2_train_step       Method II's `train_step` as implemented: one persistent
                      tape, one `tape.gradient` per player (encoder, decoder,
                      D_a, D_b), four optimizers

Each figure: mean seconds of --repeats calls of a `tf.function` after one
warm-up call. Writes bench/results/method2_step_profile.json.

Usage: python bench/method2_step_profile.py [--disc_filters 4 --disc_hidden 64]
"""
import argparse
import json
import os
import pathlib
import time

import numpy as np
import tensorflow as tf

from tfmvae import objectives
from tfmvae.models import VideoMVAE
from tfmvae.models import VideoVAEGAN

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
MACHINE = os.environ.get(
    "TFMVAE_BENCH_MACHINE", "project CPU machine, 2 cores (AMD EPYC, AVX-512), no GPU")


def timeit(fn, repeats):
  fn()  # trace + first run
  start = time.time()
  for _ in range(repeats):
    fn()
  return (time.time() - start) / repeats


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--frames", type=int, default=15)
  parser.add_argument("--filters", type=int, default=16)
  parser.add_argument("--disc_filters", type=int, default=4)
  parser.add_argument("--disc_hidden", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=4)
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--output", default=str(RESULTS / "method2_step_profile.json"))
  args = parser.parse_args()
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(args.threads)

  rng = np.random.RandomState(0)
  x = tf.constant((rng.rand(args.batch_size, args.frames, 64, 64, 1) > 0.9).astype("float32"))
  kw = dict(prior="learned", skip=True, skip_source="previous", cross_reconstruction=True,
            image_size=64, channels=1, filters=args.filters, n_past=5, n_future=10,
            z_dim=32, seed=0)
  m1 = VideoMVAE(**kw)
  m1.compile()
  m1.optimizer.build(m1.trainable_variables)
  m2 = VideoVAEGAN(discriminator_filters=args.disc_filters,
                   discriminator_hidden_units=args.disc_hidden, **kw)
  m2.compile()

  @tf.function
  def encoder_grad():
    with tf.GradientTape() as tape:
      terms = m2.adversarial_terms(x, training=True)
      loss = objectives.average_loss(terms["loss"])
    return tape.gradient(loss, m2.player_groups()[0][1])

  def player_grads(num_players):
    @tf.function
    def fn():
      groups = m2.player_groups()[:num_players]
      with tf.GradientTape(persistent=True) as tape:
        terms = m2.adversarial_terms(x, training=True)
        losses = [terms["loss"], terms["decoder_loss"]] + list(terms["discriminator_losses"])
        losses = [objectives.average_loss(l) for l in losses[:num_players]]
      return [tape.gradient(l, vs) for l, (_, vs) in zip(losses, groups)]
    return fn

  @tf.function
  def single_backward():
    variables = [v for _, group in m2.player_groups() for v in group]
    with tf.GradientTape() as tape:
      terms = m2.adversarial_terms(x, training=True)
      loss = objectives.average_loss(terms["loss"] + terms["decoder_loss"]
                                     + tf.add_n(terms["discriminator_losses"]))
    return tape.gradient(loss, variables)

  fns = {
      "m1_forward": tf.function(lambda: m1.compute_terms(x, training=True)["loss"]),
      "m1_train_step": tf.function(lambda: m1.train_step(x)),
      "m2_forward": tf.function(lambda: m2.adversarial_terms(x, training=True)["loss"]),
      "m2_forward_plus_encoder_grad": encoder_grad,
      "m2_encoder_and_decoder_grads": player_grads(2),
      "m2_all_player_grads_no_update": player_grads(4),
      "m2_single_backward_lower_bound": single_backward,
      "m2_train_step": tf.function(lambda: m2.train_step(x)),
  }
  seconds = {}
  for name, fn in fns.items():
    seconds[name] = timeit(fn, args.repeats)
    print(f"{name:34s} {seconds[name]:.3f} s", flush=True)
  ratios = {"m2_step_over_m1_step": seconds["m2_train_step"] / seconds["m1_train_step"],
            "m2_forward_over_m1_forward": seconds["m2_forward"] / seconds["m1_forward"],
            "m2_step_over_single_backward": (seconds["m2_train_step"]
                                             / seconds["m2_single_backward_lower_bound"])}
  for name, value in ratios.items():
    print(f"{name:34s} {value:.2f}x")
  out = {"seconds": seconds, "ratios": ratios, "args": vars(args), "machine": MACHINE,
         "tensorflow": tf.__version__}
  repo, out_path = RESULTS.parent.parent, pathlib.Path(args.output).resolve()
  out["args"]["output"] = (str(out_path.relative_to(repo)) if out_path.is_relative_to(repo)
                           else out_path.name)  # no machine paths in results
  pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(args.output).write_text(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
  main()
