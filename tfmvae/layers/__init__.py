"""Keras layers of tfmvae."""
from tfmvae.layers.product_of_experts import ProductOfExperts
from tfmvae.layers.product_of_experts import product_of_experts
from tfmvae.layers.gaussian_head import GaussianHead
