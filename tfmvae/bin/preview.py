"""tfmvae-preview: write a PNG grid or GIF of a dataset (no download by default).

Example:
  tfmvae-preview --dataset=moving_mnist --split=test --num=16 --output=/tmp/mm.gif
  (moving_mnist reads the MNIST IDX files from $TFMVAE_MNIST_DIR.)
"""
import sys

from absl import app
from absl import flags

_DATASET = flags.DEFINE_string(
    "dataset", "moving_shapes",
    "Dataset: moving_shapes, shapes_pairs, moving_mnist, mnist_pairs, celeba, "
    "moving_mnist_standard, moving_mnist_tfds.")
_NUM = flags.DEFINE_integer("num", 16, "Number of examples to show.")
_OUTPUT = flags.DEFINE_string(
    "output", "preview.gif", "Output file (.gif for videos, .png for images).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of generated datasets.")
_SPLIT = flags.DEFINE_string("split", "test", "Split: train, validation or test.")
_STOCHASTIC = flags.DEFINE_bool(
    "stochastic", False, "Stochastic bounces (moving_mnist, moving_shapes).")


def main(argv):
  del argv
  from tfmvae.data import preview  # pylint: disable=g-import-not-at-top  (fast --help)
  kwargs = {}
  if _DATASET.value in ("moving_mnist", "moving_shapes"):
    kwargs["stochastic"] = _STOCHASTIC.value
  path = preview(_DATASET.value, _OUTPUT.value, split=_SPLIT.value,
                         num=_NUM.value, seed=_SEED.value, **kwargs)
  print(f"Wrote {path}")


def run():
  """Console-script entry point (`tfmvae-preview`)."""
  # absl's --help lists the key flags of the module named by sys.argv[0]; for a
  # console script that is the wrapper, so declare this module's flags for it.
  for flag in (_DATASET, _NUM, _OUTPUT, _SEED, _SPLIT, _STOCHASTIC):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[flag.name])
  app.run(main)


if __name__ == "__main__":
  run()
