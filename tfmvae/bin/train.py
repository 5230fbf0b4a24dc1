"""tfmvae-train: trains a model from flags (a thin main over `tfmvae.train_lib.train`).

Examples:
  tfmvae-train --flagfile=flags/smoke.flags --model_dir=/tmp/smoke
  tfmvae-train --flagfile=flags/mm_svg_lp.flags --steps=1000   # later flags win
  tfmvae-train --preset=quickstart --model_dir=/tmp/qs --strategy=mirrored

Running the same command again resumes from the last checkpoint in --model_dir
(optimizer states, step count, KL warm-up). SIGTERM / Ctrl-C save a checkpoint
and exit with status 143 / 130. Bad or contradictory flags, a missing data folder
or a --model_dir holding a different model: one-line error, exit status 2,
nothing written.
"""
import sys

from absl import app

from tfmvae.bin import common

common.define_config_flags()


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments {argv[1:]}")
  from tfmvae import configs  # pylint: disable=g-import-not-at-top
  try:
    config = common.config_from_flags()
    if not config.model_dir:
      raise configs.ConfigError("--model_dir is required")
    from tfmvae import train_lib  # pylint: disable=g-import-not-at-top  (fast --help)
    result = train_lib.train(config, handle_signals=True, verbose=2)
  except configs.ConfigError as e:
    common.fail(e)
  if result.interrupted:
    print(f"Interrupted by {result.interrupted} at step {result.step}; checkpoint saved "
          f"in {config.model_dir}. Rerun the same command to resume.", file=sys.stderr)
    return 128 + result.signal_number
  print(f"Trained {config.model} to step {result.step}; model_dir {config.model_dir}")
  return 0


def run():
  """Console-script entry point (`tfmvae-train`)."""
  common.register_key_flags(["preset"] + list(common.CONFIG_FLAGS))
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
