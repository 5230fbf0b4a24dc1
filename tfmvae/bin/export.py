"""tfmvae-export: writes a trained model as a versioned TF Serving SavedModel.

Examples:
  tfmvae-export --model_dir=/tmp/svg_run --export_dir=exported --name=svg_smmnist
  tfmvae-export --model_dir=model.keras --name=mvae_mnist --version=3 --overwrite

--model_dir is a training directory written by tfmvae-train (config + checkpoints)
or a `.keras` file. The model lands in <export_dir>/<name>/<version>/ (default:
the next integer version), written atomically; serve it with
  docker run -p 8501:8501 -v "$PWD/exported/<name>:/models/<name>" \\
    -e MODEL_NAME=<name> tensorflow/serving
(see docs/serving.md). Bad flags, a missing model or an existing version without
--overwrite: one-line error, exit status 2, nothing written.
"""
import os

from absl import app
from absl import flags

from tfmvae.bin import common

FLAGS = flags.FLAGS


def _define(define, name, default, help_text, **kwargs):
  """Defines a flag unless another tfmvae binary in this process already did."""
  if name not in FLAGS:
    define(name, default, help_text, **kwargs)
  return name


_FLAGS = (
    _define(flags.DEFINE_string, "model_dir", None,
            "Training model_dir (config + checkpoints) or a .keras file."),
    _define(flags.DEFINE_string, "export_dir", "exported",
            "TF Serving base directory; the model goes to <export_dir>/<name>/<version>/."),
    _define(flags.DEFINE_string, "name", None,
            "Model name (directory and TF Serving model name)."),
    _define(flags.DEFINE_integer, "version", None,
            "Version number (positive); default: one above the highest existing.",
            lower_bound=1),
    _define(flags.DEFINE_bool, "overwrite", False, "Replace an existing --version."),
    _define(flags.DEFINE_integer, "max_future", 100,
            "Largest num_future a video request may ask for.", lower_bound=1),
    _define(flags.DEFINE_integer, "max_samples", 64,
            "Largest num_samples a request may ask for.", lower_bound=1),
)


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments {argv[1:]}")
  if not FLAGS.model_dir:
    common.fail("--model_dir is required (a training model_dir or a .keras file)")
  if not FLAGS.name:
    common.fail("--name is required (the TF Serving model name)")
  # Cheap checks first: a bad request fails without importing TensorFlow.
  if not os.path.exists(FLAGS.model_dir):
    common.fail(f"no model at {FLAGS.model_dir!r} (expected a training model_dir or a "
                ".keras file)")
  if FLAGS.version is not None:
    target = os.path.join(FLAGS.export_dir, FLAGS.name, str(FLAGS.version))
    if os.path.exists(target) and not FLAGS.overwrite:
      common.fail(f"{target} exists; pass --overwrite to replace it")
  from tfmvae import export  # pylint: disable=g-import-not-at-top  (fast --help)
  try:
    model = export.load_model_for_export(FLAGS.model_dir)
    path = export.export_model(model, FLAGS.export_dir, FLAGS.name, version=FLAGS.version,
                               overwrite=FLAGS.overwrite, max_future=FLAGS.max_future,
                               max_samples=FLAGS.max_samples)
  except (FileNotFoundError, FileExistsError, ValueError, TypeError) as e:
    common.fail(e)
  metadata = export.read_metadata(path)
  print(f"Exported {metadata['class']} to {path} (signatures: "
        f"{', '.join(metadata['signatures'])}; serving_default = {metadata['serving_default']})")
  return 0


def run():
  """Console-script entry point (`tfmvae-export`)."""
  common.register_key_flags(list(_FLAGS))
  app.run(main, flags_parser=common.parse_flags)


if __name__ == "__main__":
  run()
