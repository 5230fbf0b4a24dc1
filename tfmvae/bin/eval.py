"""tfmvae-eval: evaluates the latest checkpoint of a model_dir, writes metrics JSON.

The protocol of the model's family (`tfmvae.train_lib.evaluate`): MVAE / VAE-GAN:
importance-sampled log-likelihoods and cross-modal coherence (tfmvae.evaluation);
video models: per-frame MSE / MAE / PSNR / SSIM curves (both SSIM conventions),
best-of-N by the SSIM of --ssim and each metric's own best
(tfmvae.evaluation_video; its plot and GIFs go next to --output).

Examples:
  tfmvae-eval --model_dir=runs/mm_svg_lp --output=runs/mm_svg_lp/metrics.json
  tfmvae-eval --model_dir=runs/mm_svg_lp --ssim=svg --generation_batchnorm=batch
  tfmvae-eval --flagfile=flags/smoke.flags --eval_samples=10 --output=/tmp/m.json

The model comes from --model_dir/config.json; flags of a run (e.g. its flagfile)
are accepted when they agree with it, and evaluation flags (--eval_sequences,
--eval_samples, --eval_future, --ssim (= --eval_ssim), --generation_batchnorm,
--data_dir) override it.
"""
from absl import app
from absl import flags

from tfmvae.bin import common

common.define_config_flags()
_OUTPUT = flags.DEFINE_string("output", "", "Metrics JSON file (default: "
                              "<model_dir>/metrics.json).")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments {argv[1:]}")
  import os  # pylint: disable=g-import-not-at-top
  from tfmvae import configs  # pylint: disable=g-import-not-at-top
  try:
    config = common.saved_config_from_flags()
    from tfmvae import train_lib  # pylint: disable=g-import-not-at-top  (fast --help)
    model, config, step = train_lib.load_model(config.model_dir, config)
  except configs.ConfigError as e:
    common.fail(e)
  output = _OUTPUT.value or os.path.join(config.model_dir, "metrics.json")
  metrics = train_lib.evaluate(model, config, seed=config.seed,
                               report_dir=os.path.dirname(os.path.abspath(output)))
  metrics.update({"model": config.model, "dataset": config.dataset, "step": step})
  train_lib.write_json(metrics, output)
  print(f"Wrote {output}")
  return 0


def run():
  """Console-script entry point (`tfmvae-eval`)."""
  common.register_key_flags(["output", "model_dir", "eval_sequences", "eval_samples",
                             "eval_future", "ssim", "eval_ssim", "generation_batchnorm",
                             "data_dir"])
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
