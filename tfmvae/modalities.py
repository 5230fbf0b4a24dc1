"""Modality specs: one declaration per modality (name, shape, likelihood, weight, nets).

A model is built from a list of `Modality`; a third or fourth modality is a config
change. Likelihoods are TFP distributions over one example's event:

  bernoulli:    Independent(Bernoulli(logits=params)), pixel intensities in [0, 1]
                are scored with the cross-entropy form (as the MVAE code does);
  gaussian:     Independent(Normal(params, sigma)), fixed variance;
  categorical:  OneHotCategorical(logits=params), labels given one-hot.

`log_prob(x, params)` returns [batch]: the event dims are summed.
"""
import dataclasses
from typing import Optional, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfmvae import networks

tfd = tfp.distributions

LIKELIHOODS = ("bernoulli", "gaussian", "categorical")
NETWORKS = ("auto", "conv", "mlp")


@dataclasses.dataclass(frozen=True)
class Modality:
  """One modality of a multimodal VAE.

  Attributes:
    name: key of the modality in input dicts.
    shape: shape of one example, e.g. (28, 28, 1) or (10,).
    likelihood: "bernoulli", "gaussian" or "categorical".
    weight: lambda_i, the weight of its log-likelihood in the ELBO.
    network: "conv" (images), "mlp", or "auto" (conv for rank-3 shapes).
    hidden_units: dense sizes (MLP nets; the conv nets use the first one).
    filters: first conv block's filters.
    activation: activation name.
    batch_norm: BatchNorm in conv nets.
    sigma: standard deviation of the fixed-variance Gaussian likelihood.
  """
  name: str
  shape: Tuple[int, ...]
  likelihood: str = "bernoulli"
  weight: float = 1.0
  network: str = "auto"
  hidden_units: Tuple[int, ...] = (512, 512)
  filters: int = 32
  activation: str = "swish"
  batch_norm: bool = False
  sigma: float = 1.0

  def __post_init__(self):
    object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
    object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
    if self.likelihood not in LIKELIHOODS:
      raise ValueError(f"modality '{self.name}': unknown likelihood {self.likelihood!r}; "
                       f"choose one of {LIKELIHOODS}")
    if self.network not in NETWORKS:
      raise ValueError(f"modality '{self.name}': unknown network {self.network!r}; "
                       f"choose one of {NETWORKS}")
    if self.likelihood == "categorical" and len(self.shape) != 1:
      raise ValueError(f"modality '{self.name}': a categorical modality is a one-hot vector "
                       f"(shape (num_classes,)); got shape {self.shape}")
    if self.resolved_network == "conv":
      networks.downsample_plan(self.shape[0])  # Raises for sizes the nets cannot take.

  @property
  def resolved_network(self):
    if self.network != "auto":
      return self.network
    return "conv" if len(self.shape) == 3 else "mlp"

  def make_encoder(self):
    """x [B, *shape] -> features [B, F]."""
    if self.resolved_network == "conv":
      return networks.ConvEncoder(self.shape, filters=self.filters,
                                  hidden_units=self.hidden_units[0],
                                  activation=self.activation, batch_norm=self.batch_norm,
                                  name=f"{self.name}_encoder")
    return networks.MLPEncoder(self.hidden_units, activation=self.activation,
                               name=f"{self.name}_encoder")

  def make_decoder(self):
    """z [B, D] -> likelihood parameters [B, *shape] (float32)."""
    if self.resolved_network == "conv":
      return networks.ConvDecoder(self.shape, filters=self.filters,
                                  hidden_units=self.hidden_units[0],
                                  activation=self.activation, batch_norm=self.batch_norm,
                                  name=f"{self.name}_decoder")
    return networks.MLPDecoder(self.shape, self.hidden_units, activation=self.activation,
                               name=f"{self.name}_decoder")

  def distribution(self, params):
    """The likelihood p(x | z) with batch shape [B] and event shape `shape`."""
    params = tf.cast(params, tf.float32)
    if self.likelihood == "bernoulli":
      return tfd.Independent(tfd.Bernoulli(logits=params, dtype=tf.float32),
                             reinterpreted_batch_ndims=len(self.shape))
    if self.likelihood == "gaussian":
      return tfd.Independent(tfd.Normal(params, self.sigma),
                             reinterpreted_batch_ndims=len(self.shape))
    return tfd.OneHotCategorical(logits=params, dtype=tf.float32)

  def log_prob(self, x, params):
    """log p(x | z) per example, [B] (event dims summed)."""
    return self.distribution(params).log_prob(tf.cast(x, tf.float32))

  def mean(self, params):
    """The data-space mean of p(x | z): probabilities, pixel means or class probs."""
    params = tf.cast(params, tf.float32)
    if self.likelihood == "bernoulli":
      return tf.sigmoid(params)
    if self.likelihood == "gaussian":
      return params
    return tf.nn.softmax(params, axis=-1)

  def get_config(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_config(cls, config):
    return cls(**config)


def image(name="image", shape=(28, 28, 1), likelihood="bernoulli", weight=1.0, **kwargs):
  """An image modality (conv nets)."""
  return Modality(name=name, shape=shape, likelihood=likelihood, weight=weight, **kwargs)


def label(num_classes=10, name="label", weight=10.0, **kwargs):
  """A class label, one-hot, Categorical likelihood (MVAE MNIST: lambda 10)."""
  return Modality(name=name, shape=(num_classes,), likelihood="categorical", weight=weight,
                  **kwargs)


def attributes(num_attributes, name="attributes", weight=10.0, **kwargs):
  """A binary attribute vector, Bernoulli per attribute (MVAE CelebA: lambda 10)."""
  return Modality(name=name, shape=(num_attributes,), likelihood="bernoulli", weight=weight,
                  **kwargs)


def as_modality(spec):
  """Accepts a `Modality` or its config dict."""
  if isinstance(spec, Modality):
    return spec
  if isinstance(spec, dict):
    return Modality.from_config(spec)
  raise TypeError(f"expected a Modality or its config dict, got {type(spec).__name__}")
