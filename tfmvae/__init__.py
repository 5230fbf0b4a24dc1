"""tfmvae: multimodal variational autoencoders for video generation (Keras 3 / TF).

Submodules are imported lazily so that `import tfmvae` and the binaries' `--help`
stay fast (TensorFlow costs ~3 s to import, TFP ~4 s more).
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "data", "layers", "networks", "models", "modalities", "objectives", "metrics",
    "evaluation", "configs", "train_lib", "export", "serving", "callbacks", "utils",
    "optimizers", "convert",
)


def __getattr__(name):
  if name in _SUBMODULES:
    return importlib.import_module(f"tfmvae.{name}")
  raise AttributeError(f"module 'tfmvae' has no attribute {name!r}")
