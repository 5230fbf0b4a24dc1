"""Shared pytest setup: quiet TF, point the MNIST loader at ../shared when present."""
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED_MNIST = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
if "TFMVAE_MNIST_DIR" not in os.environ and _SHARED_MNIST.is_dir():
  os.environ["TFMVAE_MNIST_DIR"] = str(_SHARED_MNIST)
