"""Installs tfmvae: multimodal VAEs for video generation in Keras 3 / TensorFlow."""
from setuptools import find_packages, setup

setup(
    name="tfmvae",
    version="0.1.0",
    description=(
        "Multimodal variational autoencoders (product of experts, VAE-GAN, video "
        "prediction) for Keras 3 / TensorFlow."
    ),
    packages=find_packages(include=["tfmvae", "tfmvae.*"]),
    python_requires=">=3.10",
    install_requires=[
        # tf-keras 2.21 (pulled in by the [tf] extra of TFP) pins TF to 2.21.x.
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorflow-probability[tf]>=0.25,<0.26",
        "tensorflow-datasets>=4.9",
        # tfds download_and_prepare needs it and does not declare it.
        "importlib_resources",
        "absl-py>=2.1",
        # PNG grids and GIFs.
        "pillow>=10",
        "numpy",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout", "nbformat", "tensorflow-serving-api>=2.21,<2.22"],
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "serving": ["tensorflow-serving-api>=2.21,<2.22"],
        # Reading PyTorch checkpoints (tfmvae.convert); pin the CPU build you want first.
        "torch": ["torch>=2.1"],
    },
    entry_points={
        "console_scripts": [
            "tfmvae-preview=tfmvae.bin.preview:run",
            "tfmvae-train=tfmvae.bin.train:run",
            "tfmvae-eval=tfmvae.bin.eval:run",
            "tfmvae-sample=tfmvae.bin.sample:run",
            "tfmvae-export=tfmvae.bin.export:run",
            "tfmvae-convert=tfmvae.bin.convert:run",
        ],
    },
)
