"""MVAE on MNIST image + label (Wu & Goodman 2018), with 100 %, 10 % and 1 % labels.

Model (the paper's MNIST settings, except where the budget says otherwise):
  z = 64; image: Bernoulli likelihood, MLP 784-512-512 (Swish) encoder and
  512-512-784 decoder (`network="mlp"`, the paper's MLP, not our conv default);
  label: categorical, MLP 10-512-512 / 512-512-10; lambda_image = 1,
  lambda_label = 10; batch 100; Adam 1e-3; KL weight annealed linearly from 0 to 1
  (`tfmvae.callbacks.KLWarmup`) over the first `--warmup_fraction` of the steps.
  Objective: ELBO(image, label) + ELBO(image) + ELBO(label) per minibatch; an
  example without its label (label_fraction < 1) trains the image term only.

Difference from the paper (default `--subset_likelihood=all`): the z of every
subset's term is scored on every present modality, E_{q(z|X_S)}[sum_i lambda_i
log p(x_i|z)] - beta KL (each term still a lower bound, on log p(image, label)),
instead of on the subset's own modalities (`--subset_likelihood=own`, the paper's
objective). With the paper's objective the two experts split the latent space:
the label expert encodes the class in a few dimensions where the image expert
abstains (variance 12-33, wider than the prior), p(label | z) is trained only
where the label expert puts z, and image -> label accuracy falls during training
on train and test digits alike (0.40 after 50 epochs; see BENCHMARKS.md).

Data: `tfmvae.data.mnist_pairs` on the offline MNIST, which is only the 10k test
set split into train / validation / test pools of 8,000 / 1,000 / 1,000 digits:
numbers are NOT directly comparable with the paper's (60k training digits).

Evaluation (`tfmvae.evaluation`) on the 1,000 test digits:
  - image -> label accuracy: argmax of the label decoded from q(z | image) (mean);
  - label -> image accuracy: images decoded from z ~ q(z | label) (10 per test
    digit; also from the posterior mean), judged by a CNN classifier trained on the
    same 8k training digits (cached on disk);
  - importance-sampled log p(x), log p(x, y), log p(x | y) = log p(x, y) - log p(y)
    with K = `--num_importance_samples` samples.

Run:
  TFMVAE_MNIST_DIR=../shared/data/mnist python bench/mvae_mnist.py
Writes bench/results/mvae_mnist.json and bench/results/mvae_mnist_label_to_image.png.
"""
import json
import os
import pathlib
import platform
import sys
import time

from absl import app
from absl import flags

flags.DEFINE_float("epochs", 25, "Training epochs (80 steps of 100 digits each) per run.")
flags.DEFINE_enum("subset_likelihood", "all", ["all", "own"],
                  "MVAE subset terms scored on every present modality (all) or on the "
                  "subset's own (own: the paper's objective, poor coherence here).")
flags.DEFINE_list("label_fractions", ["1.0", "0.1", "0.01"], "Share of labeled training digits.")
flags.DEFINE_float("warmup_fraction", 0.3, "Share of the steps over which beta goes 0 -> 1.")
flags.DEFINE_integer("num_importance_samples", 1000, "K of the likelihood estimates.")
flags.DEFINE_integer("k_check_examples", 100,
                     "First run only: log p(x) with K = 100 and 1000 on this many test "
                     "digits, to show how far K = 100 is from the paper's K = 1000.")
flags.DEFINE_integer("ll_examples", 1000, "Test digits for the likelihood estimates.")
flags.DEFINE_integer("coherence_samples", 10, "Images generated per test label.")
flags.DEFINE_integer("classifier_epochs", 8, "Epochs of the coherence classifier.")
flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and sampling.")
flags.DEFINE_string("cache_dir", None, "Classifier cache (default ~/.cache/tfmvae/classifiers).")
flags.DEFINE_string("output", "bench/results/mvae_mnist.json", "JSON output.")
flags.DEFINE_string("png", "bench/results/mvae_mnist_label_to_image.png",
                    "PNG grid of label -> image samples of the first run.")
FLAGS = flags.FLAGS

BATCH_SIZE = 100
LATENT_DIM = 64
LEARNING_RATE = 1e-3


def build_model(seed):
  from tfmvae import modalities as mods  # pylint: disable=g-import-not-at-top
  from tfmvae.models import MVAE  # pylint: disable=g-import-not-at-top
  return MVAE([mods.image(shape=(28, 28, 1), network="mlp", hidden_units=(512, 512),
                          activation="swish", weight=1.0),
               mods.label(10, hidden_units=(512, 512), activation="swish", weight=10.0)],
              latent_dim=LATENT_DIM, seed=seed, subset_likelihood=FLAGS.subset_likelihood)


class StepTimer:
  """Wall time of every training batch (the first epoch holds the tracing)."""

  def __init__(self):
    import keras  # pylint: disable=g-import-not-at-top

    class _Timer(keras.callbacks.Callback):

      def __init__(self, outer):
        super().__init__()
        self.outer = outer

      def on_train_batch_begin(self, batch, logs=None):
        self.outer.start = time.perf_counter()

      def on_train_batch_end(self, batch, logs=None):
        self.outer.times.append(time.perf_counter() - self.outer.start)

    self.times, self.start = [], None
    self.callback = _Timer(self)


def run_one(label_fraction, classifier, test, seed, k_check=0):
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfmvae import evaluation  # pylint: disable=g-import-not-at-top
  from tfmvae.callbacks import KLWarmup  # pylint: disable=g-import-not-at-top
  from tfmvae.data.mnist_pairs import mnist_pairs  # pylint: disable=g-import-not-at-top
  train = mnist_pairs("train", label_fraction=label_fraction, seed=seed)
  steps_per_epoch = 8000 // BATCH_SIZE
  steps = int(round(FLAGS.epochs * steps_per_epoch))
  warmup = int(FLAGS.warmup_fraction * steps)
  ds = train.shuffle(8000, seed=seed).repeat().batch(BATCH_SIZE, drop_remainder=True)
  keras.utils.set_random_seed(seed)
  model = build_model(seed)
  model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
  timer = StepTimer()
  t0 = time.perf_counter()
  history = model.fit(ds, epochs=int(np.ceil(steps / steps_per_epoch)),
                      steps_per_epoch=steps_per_epoch,
                      callbacks=[KLWarmup(warmup), timer.callback], verbose=2)
  train_s = time.perf_counter() - t0
  step_s = float(np.median(timer.times[steps_per_epoch:] or timer.times))
  t0 = time.perf_counter()
  coherence = evaluation.cross_modal_coherence(model, test, classifier,
                                               num_samples=FLAGS.coherence_samples, seed=seed)
  coherence_s = time.perf_counter() - t0
  at_mean = evaluation.cross_modal_coherence(model, test, classifier, posterior_mean=True)
  k = FLAGS.num_importance_samples
  ll = dict(num_samples=k, batch_size=100, seed=seed, max_examples=FLAGS.ll_examples)
  t0 = time.perf_counter()
  log_px = evaluation.importance_log_likelihood(model, test, ("image",), **ll)
  log_pxy = evaluation.importance_log_likelihood(model, test, ("image", "label"), **ll)
  log_py = evaluation.importance_log_likelihood(model, test, ("label",), **ll)
  ll_s = time.perf_counter() - t0
  k_gap = {}
  if k_check:
    for kk in (100, 1000):
      t1 = time.perf_counter()
      k_gap[f"log_p_x_K{kk}"] = evaluation.importance_log_likelihood(
          model, test, ("image",), num_samples=kk, seed=seed, max_examples=k_check)
      k_gap[f"seconds_K{kk}"] = time.perf_counter() - t1
    k_gap["examples"] = k_check
  test_metrics = model.evaluate(test.batch(BATCH_SIZE), verbose=0, return_dict=True)
  result = {
      "label_fraction": label_fraction,
      "labeled_train_examples": int(round(label_fraction * 8000)),
      "epochs": steps / steps_per_epoch, "steps": steps, "kl_warmup_steps": warmup,
      "train_seconds": train_s, "median_step_seconds": step_s,
      "examples_per_second": BATCH_SIZE / step_s,
      "final_train_loss": float(history.history["loss"][-1]),
      "test_joint_elbo": float(test_metrics["elbo"]),
      "image_to_label_accuracy": coherence["image_to_label_accuracy"],
      "label_to_image_accuracy": coherence["label_to_image_accuracy"],
      "label_to_image_accuracy_posterior_mean": at_mean["label_to_image_accuracy"],
      "coherence_examples": coherence["num_examples"],
      "coherence_samples_per_label": FLAGS.coherence_samples,
      "log_p_x": log_px, "log_p_xy": log_pxy, "log_p_y": log_py,
      "log_p_x_given_y": log_pxy - log_py,
      "num_importance_samples": k, "ll_examples": FLAGS.ll_examples,
      "eval_seconds": {"coherence": coherence_s, "likelihoods": ll_s},
  }
  if k_gap:
    result["k_check"] = k_gap
  print(json.dumps(result, indent=2), flush=True)
  return model, result


def save_grid(model, path, seed):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfmvae.data.visualize import save_image_grid  # pylint: disable=g-import-not-at-top
  labels = np.eye(10, dtype=np.float32)
  images = model.generate({"label": labels}, num_samples=8, seed=seed)["image"].numpy()
  # Rows: digits 0..9; columns: 8 samples z ~ q(z | label).
  save_image_grid(images.reshape(80, 28, 28, 1), path, ncols=8)


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
  if "TFMVAE_MNIST_DIR" not in os.environ and shared.is_dir():
    os.environ["TFMVAE_MNIST_DIR"] = str(shared)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfmvae import evaluation  # pylint: disable=g-import-not-at-top
  from tfmvae.data.mnist_pairs import mnist_pairs  # pylint: disable=g-import-not-at-top
  test = mnist_pairs("test", label_fraction=1.0).cache()
  t0 = time.perf_counter()
  classifier = evaluation.train_classifier(
      mnist_pairs("train", label_fraction=1.0), epochs=FLAGS.classifier_epochs,
      cache_dir=FLAGS.cache_dir, name="mnist_pairs_t10k_train", seed=FLAGS.seed)
  classifier_s = time.perf_counter() - t0
  clf_test = evaluation.classifier_accuracy(classifier, test)
  print(f"classifier test accuracy {clf_test['accuracy']:.4f} ({classifier_s:.0f} s)")
  runs = []
  for i, fraction in enumerate(float(f) for f in FLAGS.label_fractions):
    model, result = run_one(fraction, classifier, test, FLAGS.seed,
                            k_check=FLAGS.k_check_examples if i == 0 else 0)
    runs.append(result)
    if i == 0 and FLAGS.png:
      save_grid(model, FLAGS.png, FLAGS.seed)
  out = {
      "benchmark": "mvae_mnist",
      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                 f"TF {tf.__version__}, Python {sys.version.split()[0]}",
      "data": "MNIST t10k split 8000/1000/1000 (train/validation/test)",
      "model": {"latent_dim": LATENT_DIM, "batch_size": BATCH_SIZE,
                "learning_rate": LEARNING_RATE, "image_network": "mlp 512-512 swish",
                "label_network": "mlp 512-512 swish", "lambda_image": 1.0,
                "lambda_label": 10.0, "image_likelihood": "bernoulli",
                "subset_likelihood": FLAGS.subset_likelihood,
                "kl_warmup_fraction": FLAGS.warmup_fraction},
      "classifier": {"test_accuracy": clf_test["accuracy"], "epochs": FLAGS.classifier_epochs,
                     "seconds": classifier_s},
      "runs": runs,
  }
  path = pathlib.Path(FLAGS.output)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(out, indent=2) + "\n")
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
