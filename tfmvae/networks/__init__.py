"""Encoders, decoders and discriminators."""
from tfmvae.networks.image import ConvDecoder
from tfmvae.networks.image import ConvEncoder
from tfmvae.networks.image import downsample_plan
from tfmvae.networks.mlp import MLPDecoder
from tfmvae.networks.mlp import MLPEncoder
