"""tfmvae-convert: a trained model of another code base as a tfmvae model directory.

Sources (--from):
  edenton_svg  Denton & Fergus's SVG-FP / SVG-LP (github.com/edenton/svg): their
               `.pth` checkpoint (needs torch: pip install 'tfmvae[torch]') or an
               `.npz` of their state_dict tensors keyed MODULE/PARAM. DCGAN frame
               networks; sizes from the checkpoint's options or tensor shapes.

The directory holds config.json and a checkpoint at step 0, and is used as a
trained one: tfmvae-eval, tfmvae-sample, tfmvae-export (and tfmvae-train to
fine-tune it).

Examples:
  tfmvae-convert --from=edenton_svg --checkpoint=svg_lp_smmnist.npz --model_dir=runs/svg_authors
  tfmvae-eval --model_dir=runs/svg_authors --eval_samples=100 --ssim=svg
"""
from absl import app
from absl import flags

from tfmvae.bin import common

_FROM = flags.DEFINE_enum("from", "edenton_svg", ["edenton_svg"], "Code base of the checkpoint.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "", "The checkpoint (.pth or .npz).")
_MODEL_DIR = flags.DEFINE_string("model_dir", "", "New model directory to write.")
_DATASET = flags.DEFINE_string("dataset", "moving_mnist", "Dataset of the directory's config "
                               "(what tfmvae-eval / tfmvae-sample read).")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Data folder of the directory's config.")
_N_PAST = flags.DEFINE_integer("n_past", None, "Override the checkpoint's n_past.")
_N_FUTURE = flags.DEFINE_integer("n_future", None, "Override the checkpoint's n_future.")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments {argv[1:]}")
  if not _CHECKPOINT.value:
    common.fail("--checkpoint is required")
  if not _MODEL_DIR.value:
    common.fail("--model_dir is required")
  from tfmvae import configs  # pylint: disable=g-import-not-at-top
  from tfmvae import convert  # pylint: disable=g-import-not-at-top
  overrides = {k: v for k, v in (("n_past", _N_PAST.value), ("n_future", _N_FUTURE.value))
               if v is not None}
  fields = {"data_dir": _DATA_DIR.value} if _DATA_DIR.value else {}
  try:
    model = convert.svg_from_pytorch(_CHECKPOINT.value, **overrides)
    config = convert.write_model_dir(model, _MODEL_DIR.value, dataset=_DATASET.value, **fields)
  except (FileNotFoundError, ImportError, convert.ConversionError, configs.ConfigError) as e:
    common.fail(e)
  kind = "SVG-LP" if model.learned_prior else "SVG-FP"
  print(f"Converted {kind} ({model.count_params():,} parameters, {model.image_size}x"
        f"{model.image_size}x{model.channels}, n_past {model.n_past}) from "
        f"{_CHECKPOINT.value} into {config.model_dir}")
  return 0


def run():
  """Console-script entry point (`tfmvae-convert`)."""
  common.register_key_flags(["from", "checkpoint", "model_dir", "dataset", "data_dir",
                             "n_past", "n_future"])
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
