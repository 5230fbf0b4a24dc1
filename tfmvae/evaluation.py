"""Evaluation of multimodal VAEs: importance-sampled likelihoods and cross-modal coherence.

Plain functions taking a model and data (a `tf.data.Dataset` of dicts, batched or
not, or a dict of NumPy arrays [N, ...]); the eval binary and the benchmarks call them.

Importance-sampled log-likelihood (Burda et al. 2016; as reported by Wu & Goodman
2018, Table 2). For a subset X of modalities of one example:

    log p(X) ~= logsumexp_k [ sum_{i in X} log p(x_i | z_k) + log p(z_k) - log q(z_k | X) ] - log K,
    z_k ~ q(z | X),  k = 1..K,

where q(z | X) is the model's product-of-experts posterior of exactly the subset X
(`model.encode` with the other modalities missing), p(z) the model's prior and
log p(x_i | z) the TRUE likelihood `Modality.log_prob` of the decoder's parameters:
no lambda weights and no learned-similarity hook. The estimate is a stochastic
lower bound of log p(X) that tightens as K grows (K = 1 is the ELBO in expectation);
the paper uses K = 1000.

Conditional likelihoods use the chain rule with two independent estimates:

    log p(X | Y) = log p(X, Y) - log p(Y),

each estimated as above (q(z | X, Y) and q(z | Y) as proposals). This is a choice:
p(z | Y) inside p(X | Y) = E_{p(z|Y)}[p(X | z)] is intractable, and the difference
of two estimates is consistent (exact as K -> infinity) but, unlike the unconditional
estimate, not a lower bound for finite K.

Cross-modal coherence (Wu & Goodman 2018, Sec. 5; Shi et al. 2019):

- image -> label: decode the label from q(z | image) (posterior mean, no label
  given) and compare its argmax (categorical labels) or its 0.5-thresholded
  probabilities (Bernoulli attribute vectors, per-attribute accuracy) with the truth;
- label -> image: sample z ~ q(z | label) (or take its mean, `posterior_mean`),
  decode the image mean (pixel probabilities for a Bernoulli image), and judge it
  with an independent CNN classifier trained by `train_classifier` on the same
  training split.

Only examples whose needed modalities are present (dataset "mask" column 1) count.
"""
import importlib
import json
import math
import os
import pathlib
import tempfile
import uuid
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

DEFAULT_NUM_SAMPLES = 1000
CACHE_DIR_ENV = "TFMVAE_CACHE_DIR"
CLASSIFIER_FILE = "classifier.keras"
CLASSIFIER_META = "classifier.json"


# ----------------------------------------------------------------------------- data
def _as_batched(model, data, batch_size, max_examples=None):
  """A batched dataset of dicts from a Dataset (batched or not) or NumPy arrays."""
  if isinstance(data, dict):
    data = tf.data.Dataset.from_tensor_slices(
        {k: np.asarray(v, np.float32) for k, v in data.items() if v is not None})
  if not isinstance(data, tf.data.Dataset):
    raise TypeError(f"expected a tf.data.Dataset or a dict of arrays; got {type(data).__name__}")
  spec = data.element_spec
  if not isinstance(spec, dict):
    raise ValueError(f"expected a dataset of dicts with keys {model.modality_names}; "
                     f"got element spec {spec}")
  name = next((m.name for m in model.modalities if m.name in spec), None)
  if name is None:
    raise ValueError(f"the dataset has none of the model's modalities {model.modality_names}; "
                     f"keys: {sorted(spec)}")
  rank = len(model.modalities[model.modality_names.index(name)].shape)
  batched = spec[name].shape.rank == rank + 1
  if max_examples is not None:
    data = data.unbatch() if batched else data
    data = data.take(int(max_examples))
    batched = False
  if not batched:
    data = data.batch(int(batch_size))
  return data.prefetch(tf.data.AUTOTUNE)


def _restrict(batch, names, model):
  """The batch with only the modalities `names` (+ mask): the others are missing."""
  unknown = [n for n in names if n not in model.modality_names]
  if unknown:
    raise ValueError(f"unknown modalities {unknown}; this model has {model.modality_names}")
  absent = [n for n in names if n not in batch]
  if absent:
    raise ValueError(f"the data has no modality {absent}; keys: {sorted(batch)}")
  out = {n: batch[n] for n in names}
  if "mask" in batch:
    out["mask"] = batch["mask"]
  return out


def _present(model, batch, names):
  """float32 [B]: 1 where every modality in `names` is present (dataset mask)."""
  _, mask = model.parse_inputs(_restrict(batch, names, model))
  cols = [model.modality_names.index(n) for n in names]
  return tf.reduce_prod(tf.gather(mask, cols, axis=1), axis=1)


def _prior(model, batch_size):
  if hasattr(model, "prior"):
    return model.prior(batch_size)
  return tfd.MultivariateNormalDiag(loc=tf.zeros([batch_size, model.latent_dim]))


# ----------------------------------------------------------------------------- likelihood
def log_importance_weights(model, inputs, subset, z):
  """Log importance weights of latent samples for the subset `subset`.

      log w_k = sum_{i in subset} log p(x_i | z_k) + log p(z_k) - log q(z_k | subset)

  Args:
    model: an MVAE-like model (`modalities`, `modality_names`, `decoders`,
      `parse_inputs`, `encode`, `prior`).
    inputs: dict {name: [B, *shape]} (+ optional "mask" [B, M]); modalities not
      in `subset` are ignored.
    subset: names of the modalities X (the proposal is q(z | X)).
    z: [K, B, D] latent samples.

  Returns:
    float32 [K, B]. A modality missing for an example (mask 0) contributes 0.
  """
  return _log_weights(model, _restrict(inputs, tuple(subset), model), tuple(subset), z=z)[0]


def _log_weights(model, restricted, subset, z=None, eps=None):
  """(log w [K, B], z [K, B, D]); z = loc + scale * eps when z is None."""
  xs, mask = model.parse_inputs(restricted)
  loc, scale = model.encode(restricted)
  z = loc[None] + scale[None] * eps if z is None else tf.cast(z, tf.float32)
  num = tf.shape(z)[0]
  batch = tf.shape(loc)[0]
  q = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
  log_w = _prior(model, batch).log_prob(z) - q.log_prob(z)  # [K, B]
  flat = tf.reshape(z, [-1, model.latent_dim])
  for name in subset:
    i = model.modality_names.index(name)
    params = model.decoders[i](flat, training=False)
    x = xs[name]
    x_rep = tf.reshape(tf.repeat(x[None], num, axis=0), tf.concat([[-1], tf.shape(x)[1:]], 0))
    ll = tf.reshape(model.modalities[i].log_prob(x_rep, params), [num, batch])
    log_w += ll * mask[None, :, i]
  return log_w, z


def _chunk_logsumexp(model, restricted, eps, subset):
  """logsumexp_k log w_k over one chunk of noise eps [k, B, D] -> [B]."""
  return tf.reduce_logsumexp(_log_weights(model, restricted, subset, eps=eps)[0], axis=0)


def importance_log_likelihood_batch(model, inputs, subset, num_samples=DEFAULT_NUM_SAMPLES,
                                    seed=0, chunk_size=100, noise=None, compiled=None):
  """Per-example importance-sampled log p(X) for one batch.

  Args:
    model: an MVAE-like model.
    inputs: dict {name: [B, *shape]} (+ optional "mask").
    subset: names of the modalities X.
    num_samples: K.
    seed: int or (int, int); chunk c uses `tf.random.stateless_normal` with seed
      (seed[0], seed[1] + c), so the same seed gives the same estimate.
    chunk_size: samples decoded at once (memory: B * chunk_size decoder passes).
    noise: optional [K, B, D] standard-normal draws replacing the seeded ones
      (common random numbers, tests); z_k = loc + scale * noise_k.
    compiled: optional `tf.function` of `_chunk_logsumexp` (reused across batches).

  Returns:
    float32 [B]: logsumexp_k log w_k - log K.
  """
  subset = tuple(subset)
  restricted = _restrict(inputs, subset, model)
  size = tf.shape(restricted[subset[0]])[0]
  seed = [int(seed), 0] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
  if noise is not None:
    noise = tf.convert_to_tensor(noise, tf.float32)
    num_samples = int(noise.shape[0])
  chunk_fn = compiled or (lambda r, e: _chunk_logsumexp(model, r, e, subset))
  chunks = []
  for c, start in enumerate(range(0, num_samples, chunk_size)):
    count = min(chunk_size, num_samples - start)
    if noise is None:
      eps = tf.random.stateless_normal(tf.stack([count, size, model.latent_dim]),
                                       seed=[seed[0], seed[1] + c])
    else:
      eps = noise[start:start + count]
    chunks.append(chunk_fn(restricted, eps))
  return tf.reduce_logsumexp(tf.stack(chunks), axis=0) - math.log(num_samples)


def importance_log_likelihood(model, data, subset=("image",), conditioned_on=None,
                              num_samples=DEFAULT_NUM_SAMPLES, batch_size=100, seed=0,
                              chunk_size=100, max_examples=None, return_per_example=False):
  """Mean importance-sampled log p(subset) or log p(subset | conditioned_on) in nats.

  log p(X | Y) is log p(X, Y) - log p(Y), two independent estimates (module docstring).

  Args:
    model: an MVAE-like model.
    data: `tf.data.Dataset` of dicts (batched or not) or dict of arrays [N, ...].
    subset: modalities X, e.g. ("image",) or ("image", "label").
    conditioned_on: optional modalities Y (disjoint from X), e.g. ("label",).
    num_samples: K (1000 as Wu & Goodman; fewer gives a looser bound).
    batch_size: examples per batch when `data` is unbatched.
    seed: batch b uses seed (seed, 1000 b) for the joint estimate and
      (seed + 1, 1000 b) for log p(Y) (see `importance_log_likelihood_batch`).
    chunk_size: samples decoded at once.
    max_examples: evaluate only the first N examples.
    return_per_example: also return the per-example values.

  Returns:
    float, mean over the examples that have every needed modality (mask 1);
    (float, np.ndarray [N_used]) with `return_per_example`.
  """
  subset = tuple(subset)
  cond = tuple(conditioned_on or ())
  if not subset:
    raise ValueError("subset must name at least one modality")
  if set(subset) & set(cond):
    raise ValueError(f"subset {subset} and conditioned_on {cond} overlap")
  joint = tuple(n for n in model.modality_names if n in subset + cond)
  if len(joint) != len(set(subset + cond)):
    raise ValueError(f"unknown modalities in {subset + cond}; this model has "
                     f"{model.modality_names}")
  compiled = {s: tf.function(lambda r, e, s=s: _chunk_logsumexp(model, r, e, s),
                             reduce_retracing=True) for s in {joint, cond} if s}
  values = []
  for b, batch in enumerate(_as_batched(model, data, batch_size, max_examples)):
    present = _present(model, batch, joint).numpy() > 0
    est = importance_log_likelihood_batch(model, batch, joint, num_samples, (seed, 1000 * b),
                                          chunk_size, compiled=compiled[joint])
    if cond:
      est -= importance_log_likelihood_batch(model, batch, cond, num_samples,
                                             (seed + 1, 1000 * b), chunk_size,
                                             compiled=compiled[cond])
    values.append(est.numpy()[present])
  values = np.concatenate(values) if values else np.zeros([0], np.float32)
  if values.size == 0:
    raise ValueError(f"no example has all of the modalities {joint}")
  mean = float(np.mean(values.astype(np.float64)))
  return (mean, values) if return_per_example else mean


# ----------------------------------------------------------------------------- classifier
def make_classifier(image_shape, num_outputs, seed=0):
  """A small CNN: x [B, S, S, C] in [0, 1] -> logits [B, num_outputs].

  Conv 3x3 (32, ReLU), then stride-2 Conv 3x3 blocks (64, 128, 128, ...) until the
  side is at most 7, Flatten, Dropout 0.25, Dense 128 (ReLU), Dense num_outputs.
  Built from Keras layers only (reloads without custom objects).
  """
  image_shape = tuple(int(s) for s in image_shape)
  if len(image_shape) != 3:
    raise ValueError(f"image shape must be (height, width, channels); got {image_shape}")
  init = lambda k: keras.initializers.GlorotUniform(seed=seed * 100 + k)  # noqa: E731
  inputs = keras.Input(image_shape, name="image")
  x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(0),
                          name="conv0")(inputs)
  side, filters, k = max(image_shape[:2]), 64, 1
  while side > 7:
    x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                            kernel_initializer=init(k), name=f"conv{k}")(x)
    side, filters, k = (side + 1) // 2, min(2 * filters, 128), k + 1
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dropout(0.25, seed=seed)(x)
  x = keras.layers.Dense(128, activation="relu", kernel_initializer=init(k), name="hidden")(x)
  logits = keras.layers.Dense(num_outputs, kernel_initializer=init(k + 1), name="logits")(x)
  return keras.Model(inputs, logits, name="coherence_classifier")


def classifier_cache_dir(name, cache_dir=None):
  """<cache_dir or $TFMVAE_CACHE_DIR or ~/.cache/tfmvae/classifiers>/<name>."""
  base = cache_dir or os.environ.get(CACHE_DIR_ENV) or (
      pathlib.Path.home() / ".cache" / "tfmvae" / "classifiers")
  return pathlib.Path(base) / name


def _load_split(name, split):
  """`tfmvae.data.<name>(split)` (e.g. "mnist_pairs", "shapes_pairs")."""
  data = importlib.import_module("tfmvae.data")
  fn = getattr(data, name, None)
  if fn is None:
    try:
      fn = getattr(importlib.import_module(f"tfmvae.data.{name}"), name)
    except (ImportError, AttributeError) as e:
      raise ValueError(f"unknown dataset {name!r}: tfmvae.data has no function {name}") from e
  return fn(split)


def _labeled_pairs(data, image_key, label_key, label_mask_index):
  """Unbatched (image, label) of the examples whose label is present."""
  if isinstance(data, dict):
    data = tf.data.Dataset.from_tensor_slices({k: np.asarray(v) for k, v in data.items()})
  spec = data.element_spec
  for key in (image_key, label_key):
    if key not in spec:
      raise ValueError(f"the dataset has no key {key!r}; keys: {sorted(spec)}")
  if spec[image_key].shape.rank == 4:
    data = data.unbatch()
  if "mask" in spec and label_mask_index is not None:
    data = data.filter(lambda e: e["mask"][label_mask_index] > 0)
  return data.map(lambda e: (tf.cast(e[image_key], tf.float32),
                             tf.cast(e[label_key], tf.float32)))


def _is_one_hot(labels):
  labels = np.asarray(labels)
  return bool(np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(-1) == 1))


def train_classifier(data, image_key="image", label_key="label", *, multi_label=None,
                     label_mask_index=1, epochs=5, batch_size=128, learning_rate=1e-3,
                     cache_dir=None, name=None, overwrite=False, seed=0, verbose=0):
  """Trains (or loads from the disk cache) the coherence classifier image -> label.

  Categorical labels (one-hot) get a softmax cross-entropy; attribute vectors
  (multi-label, 0/1 per attribute) a per-attribute sigmoid cross-entropy.

  Caching: a classifier trained on a named dataset is saved to
  `classifier_cache_dir(name, cache_dir)/classifier.keras` with `classifier.json`
  (keys, shapes, multi_label, epochs, training examples), both written atomically
  (temporary file + os.replace). A later call with the same name and settings
  loads it instead of training; `overwrite=True` retrains. A `tf.data.Dataset`
  without `name` is not cached.

  Args:
    data: dataset name (`tfmvae.data.<name>("train")`, e.g. "mnist_pairs"), a
      dataset of dicts (batched or not) or a dict of arrays.
    image_key, label_key: keys of the image and of the label/attribute vector.
    multi_label: True for attribute vectors; None infers it (every labeled row of
      the first 1000 one-hot -> categorical).
    label_mask_index: column of the label in the dataset's "mask" (image first:
      1); examples with a 0 there are skipped. None uses every example.
    epochs, batch_size, learning_rate: Adam training settings.
    cache_dir: cache base directory (default $TFMVAE_CACHE_DIR or
      ~/.cache/tfmvae/classifiers).
    name: cache name; defaults to `data` when it is a string.
    overwrite: retrain even when a cached classifier exists.
    seed: seed of the initializers and of the shuffling.
    verbose: Keras fit verbosity.

  Returns:
    A Keras model x [B, *image_shape] -> logits [B, num_outputs], with attribute
    `multi_label` (bool) set.
  """
  if isinstance(data, str):
    name = name or data
    data = _load_split(data, "train")
  pairs = _labeled_pairs(data, image_key, label_key, label_mask_index)
  probe = list(pairs.take(1000).batch(1000).as_numpy_iterator())
  if not probe:
    raise ValueError("no labeled example to train the classifier on")
  images, labels = probe[0]
  if multi_label is None:
    multi_label = not _is_one_hot(labels)
  meta = {"image_key": image_key, "label_key": label_key, "multi_label": bool(multi_label),
          "image_shape": list(images.shape[1:]), "num_outputs": int(labels.shape[-1]),
          "epochs": int(epochs), "batch_size": int(batch_size),
          "learning_rate": float(learning_rate), "seed": int(seed)}
  directory = classifier_cache_dir(name, cache_dir) if name else None
  if directory is not None and not overwrite:
    cached = _load_cached(directory, meta)
    if cached is not None:
      return cached
  model = make_classifier(images.shape[1:], labels.shape[-1], seed=seed)
  if multi_label:
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    metrics = [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
  else:
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
  model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
  train = pairs.shuffle(10000, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
  with warnings.catch_warnings():
    # The filtered dataset has unknown length: Keras learns it in epoch 1 and warns
    # "ran out of data" at that epoch's end; every epoch still sees all the data.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    history = model.fit(train.prefetch(tf.data.AUTOTUNE), epochs=epochs, verbose=verbose)
  meta["train_accuracy"] = float(history.history["accuracy"][-1])
  model.multi_label = bool(multi_label)
  if directory is not None:
    _save_atomic(model, meta, directory)
  return model


def _load_cached(directory, meta):
  path, meta_path = directory / CLASSIFIER_FILE, directory / CLASSIFIER_META
  if not (path.is_file() and meta_path.is_file()):
    return None
  try:
    saved = json.loads(meta_path.read_text())
  except (OSError, ValueError):
    return None
  if any(saved.get(k) != v for k, v in meta.items()):
    return None
  model = keras.saving.load_model(path, compile=False)
  model.multi_label = bool(saved["multi_label"])
  return model


def _save_atomic(model, meta, directory):
  """Writes classifier.keras then classifier.json, each via a temp file + os.replace."""
  directory.mkdir(parents=True, exist_ok=True)
  tmp = directory / f".tmp-{os.getpid()}-{uuid.uuid4().hex}.keras"
  try:
    model.save(tmp)
    os.replace(tmp, directory / CLASSIFIER_FILE)
  finally:
    if tmp.exists():
      tmp.unlink()
  fd, tmp_meta = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
  with os.fdopen(fd, "w") as f:
    json.dump(meta, f, indent=2)
  os.replace(tmp_meta, directory / CLASSIFIER_META)


def _classifier_multi_label(classifier, multi_label):
  if multi_label is not None:
    return bool(multi_label)
  if not hasattr(classifier, "multi_label"):
    raise ValueError("the classifier has no `multi_label` attribute: pass multi_label=")
  return bool(classifier.multi_label)


def _correct(probs_or_logits, truth, multi_label, logits):
  """Correctness per example: [N] (categorical) or [N, A] (per attribute)."""
  if multi_label:
    threshold = 0.0 if logits else 0.5
    return ((probs_or_logits > threshold) == (truth > 0.5)).astype(np.float64)
  return (np.argmax(probs_or_logits, -1) == np.argmax(truth, -1)).astype(np.float64)


def classifier_accuracy(classifier, data, image_key="image", label_key="label", *,
                        multi_label=None, label_mask_index=1, batch_size=256):
  """Accuracy of a classifier on labeled examples (mean over attributes when multi-label).

  Returns:
    dict: accuracy (float), num_examples (int), and per_attribute (list) when multi-label.
  """
  multi = _classifier_multi_label(classifier, multi_label)
  if isinstance(data, str):
    data = _load_split(data, "test")
  correct = []
  for images, labels in _labeled_pairs(data, image_key, label_key, label_mask_index).batch(
      batch_size):
    logits = classifier(images, training=False).numpy()
    correct.append(_correct(logits, labels.numpy(), multi, logits=True))
  correct = np.concatenate(correct)
  out = {"accuracy": float(correct.mean()), "num_examples": int(len(correct))}
  if multi:
    out["per_attribute"] = correct.mean(0).tolist()
  return out


# ----------------------------------------------------------------------------- coherence
def cross_modal_coherence(model, data, classifier, image_key="image", label_key="label", *,
                          num_samples=1, batch_size=100, seed=0, max_examples=None,
                          multi_label=None, posterior_mean=False):
  """Image -> label accuracy through the model; label -> image accuracy by the classifier.

  image -> label: the label modality decoded at the posterior mean of q(z | image)
  (`model.reconstruct` with the label missing); argmax vs. the true class, or for
  attribute vectors (Bernoulli likelihood) probability > 0.5 vs. the truth, per attribute.
  label -> image: `num_samples` images per example from z ~ q(z | label)
  (`model.generate`, seed (seed, batch index)), classified by `classifier`; each
  sample is scored against the conditioning label (attributes: per attribute).

  Args:
    model: an MVAE-like model with modalities `image_key` and `label_key`.
    data: dataset of dicts (batched or not) or dict of arrays; examples whose image
      or label is missing (mask 0) are skipped.
    classifier: model image -> logits (e.g. `train_classifier`).
    num_samples: generated images per label.
    multi_label: override (default: from the label modality's likelihood,
      "categorical" -> single label, otherwise attribute vector).
    posterior_mean: label -> image from the posterior mean of q(z | label) (one
      image per example, `model.reconstruct`) instead of `num_samples` samples.

  Returns:
    dict with image_to_label_accuracy, label_to_image_accuracy (floats, means over
    examples and attributes), num_examples, and for attribute vectors
    image_to_label_per_attribute, label_to_image_per_attribute (lists [A]).
  """
  for key in (image_key, label_key):
    if key not in model.modality_names:
      raise ValueError(f"the model has no modality {key!r}; it has {model.modality_names}")
  if multi_label is None:
    likelihood = model.modalities[model.modality_names.index(label_key)].likelihood
    multi_label = likelihood != "categorical"
  ds = _as_batched(model, data, batch_size, max_examples)
  to_label, to_image = [], []
  for b, batch in enumerate(ds):
    present = _present(model, batch, (image_key, label_key)).numpy() > 0
    if not present.any():
      continue
    truth = batch[label_key].numpy()[present]
    images = tf.boolean_mask(tf.cast(batch[image_key], tf.float32), present)
    labels = tf.constant(truth, tf.float32)
    probs = model.reconstruct({image_key: images})[label_key].numpy()
    to_label.append(_correct(probs, truth, multi_label, logits=False))
    if posterior_mean:
      flat, repeats = model.reconstruct({label_key: labels})[image_key], 1
    else:
      generated = model.generate({label_key: labels}, num_samples=num_samples,
                                 seed=[seed, b])[image_key]
      flat = tf.reshape(generated, tf.concat([[-1], tf.shape(generated)[2:]], 0))
      repeats = num_samples
    logits = classifier(flat, training=False).numpy()
    truth_rep = np.repeat(truth, repeats, axis=0)
    to_image.append(_correct(logits, truth_rep, multi_label, logits=True))
  if not to_label:
    raise ValueError(f"no example has both {image_key!r} and {label_key!r}")
  to_label, to_image = np.concatenate(to_label), np.concatenate(to_image)
  out = {"image_to_label_accuracy": float(to_label.mean()),
         "label_to_image_accuracy": float(to_image.mean()),
         "num_examples": int(len(to_label))}
  if multi_label:
    out["image_to_label_per_attribute"] = to_label.mean(0).tolist()
    out["label_to_image_per_attribute"] = to_image.mean(0).tolist()
  return out
