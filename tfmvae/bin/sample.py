"""tfmvae-sample: PNG grids and GIFs from the latest checkpoint of a model_dir.

Multimodal models: prior samples, cross-modal generation (images from the labels /
attributes of test examples; MNIST: from each digit label), reconstructions.
Video models: continuations of test sequences after n_past real frames, as a
PNG strip and a GIF (real video, then --num_samples sampled continuations).

Examples:
  tfmvae-sample --model_dir=runs/mm_svg_lp --output_dir=runs/mm_svg_lp/samples
  tfmvae-sample --flagfile=flags/smoke.flags --output_dir=/tmp/samples
"""
from absl import app
from absl import flags

from tfmvae.bin import common

common.define_config_flags()
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "", "Output folder (default: "
                                  "<model_dir>/samples).")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 8, "Test examples / sequences shown.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 4, "Samples per example.")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments {argv[1:]}")
  import os  # pylint: disable=g-import-not-at-top
  from tfmvae import configs  # pylint: disable=g-import-not-at-top
  try:
    if _NUM_EXAMPLES.value <= 0 or _NUM_SAMPLES.value <= 0:
      raise configs.ConfigError("--num_examples and --num_samples must be positive")
    config = common.saved_config_from_flags()
    from tfmvae import train_lib  # pylint: disable=g-import-not-at-top  (fast --help)
    model, config, _ = train_lib.load_model(config.model_dir, config)
  except configs.ConfigError as e:
    common.fail(e)
  output_dir = _OUTPUT_DIR.value or os.path.join(config.model_dir, "samples")
  paths = train_lib.write_samples(model, config, output_dir, num=_NUM_EXAMPLES.value,
                                  num_samples=_NUM_SAMPLES.value, seed=config.seed)
  for path in paths:
    print(f"Wrote {path}")
  return 0


def run():
  """Console-script entry point (`tfmvae-sample`)."""
  common.register_key_flags(["output_dir", "num_examples", "num_samples", "model_dir"])
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
