"""VAE-GAN (learned similarity) vs. MVAE (pixel likelihood) on two image + label datasets.

For each dataset (MNIST image + label, `tfmvae.data.mnist_pairs`; Moving-Shapes
frames + attributes, `tfmvae.data.shapes_pairs`) trains an MVAE with a Bernoulli
pixel likelihood and a VAEGAN (same encoders/decoders, Larsen's discriminator,
feature likelihood in Dis_l, three optimizers) for the same number of steps, then
measures:

  coherence  label/attributes -> image, judged by an independent classifier
             (`tfmvae.evaluation.train_classifier`, trained on real data), and
             image -> label/attributes accuracy through the model
             (`tfmvae.evaluation.cross_modal_coherence`);
  sharpness  mean gradient magnitude |grad x| (finite differences) of generated
             images divided by that of real test images (1.0 = as sharp as
             the data), for label -> image generations, prior samples and
             reconstructions;
  recon_mse  per-pixel squared error of image -> image reconstructions.

Writes bench/results/vaegan_vs_mvae.json and one PNG grid per run
(bench/results/vaegan_<dataset>_<model>.png: rows real | reconstruction |
label -> image | prior sample).

Usage:
  python bench/vaegan_vs_mvae.py                 # both datasets, default steps
  python bench/vaegan_vs_mvae.py --steps 20 --eval_examples 64 --out /tmp/x  # smoke
"""
import argparse
import json
import os
import pathlib
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
if "TFMVAE_MNIST_DIR" not in os.environ and _SHARED_MNIST.is_dir():
  os.environ["TFMVAE_MNIST_DIR"] = str(_SHARED_MNIST)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfmvae import callbacks  # noqa: E402
from tfmvae import data as tdata  # noqa: E402
from tfmvae import evaluation  # noqa: E402
from tfmvae import modalities as mods  # noqa: E402
from tfmvae.models import MVAE  # noqa: E402
from tfmvae.models import VAEGAN  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def gradient_magnitude(images):
  """Mean over images and pixels of sqrt(dx^2 + dy^2), forward differences."""
  x = np.asarray(images, np.float32)
  dx = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
  dy = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
  return float(np.mean(np.sqrt(dx**2 + dy**2)))


def dataset_spec(name, image_size):
  if name == "mnist":
    train = tdata.mnist_pairs("train")
    test = tdata.mnist_pairs("test")
    second = mods.label(10, hidden_units=(128,))
    return train, test, second, (28, 28, 1)
  train = tdata.shapes_pairs("train", image_size=image_size, seed=0)
  test = tdata.shapes_pairs("test", image_size=image_size, seed=0)
  num_attrs = test.element_spec["attributes"].shape[0]
  second = mods.attributes(num_attrs, hidden_units=(128,))
  return train, test, second, (image_size, image_size, 1)


def build(kind, image_shape, second, args):
  image = mods.image(shape=image_shape, filters=args.filters, hidden_units=(128,))
  common = dict(latent_dim=args.latent_dim, seed=args.seed)
  if kind == "mvae":
    model = MVAE([image, second], **common)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    return model
  model = VAEGAN([image, second], gamma=args.gamma, pixel_weight=0.0,
                 discriminator_filters=args.discriminator_filters,
                 feature_layer=args.feature_layer,
                 discriminator_hidden_units=64, equilibrium=0.68,
                 equilibrium_margin=args.margin, **common)
  model.compile(encoder_optimizer=keras.optimizers.Adam(args.learning_rate),
                decoder_optimizer=keras.optimizers.Adam(args.learning_rate),
                discriminator_optimizer=keras.optimizers.Adam(args.learning_rate,
                                                              beta_1=0.5))
  return model


def evaluate(model, test, second_key, classifier, args):
  coherence = evaluation.cross_modal_coherence(
      model, test.take(args.eval_examples), classifier, image_key="image",
      label_key=second_key, num_samples=1, seed=args.seed)
  batch = next(iter(test.take(args.eval_examples).batch(args.eval_examples)))
  real = batch["image"].numpy()
  recon = model.reconstruct({"image": batch["image"]})["image"].numpy()
  cond = model.generate({second_key: batch[second_key]}, num_samples=1,
                        seed=[args.seed, 1])["image"].numpy()[:, 0]
  prior = model.sample(args.eval_examples, seed=[args.seed, 2])["image"].numpy()
  g_real = gradient_magnitude(real)
  out = {
      "image_to_label_accuracy": coherence["image_to_label_accuracy"],
      "label_to_image_accuracy": coherence["label_to_image_accuracy"],
      "coherence_examples": coherence["num_examples"],
      "sharpness_label_to_image": gradient_magnitude(cond) / g_real,
      "sharpness_prior": gradient_magnitude(prior) / g_real,
      "sharpness_reconstruction": gradient_magnitude(recon) / g_real,
      "recon_mse": float(np.mean((recon - real)**2)),
  }
  n = min(10, len(real))
  grid = np.concatenate([real[:n], recon[:n], cond[:n], prior[:n]], axis=0)
  return out, grid


def run(args):
  results = {"machine": f"{platform.node()} CPU x{os.cpu_count()}, TF {tf.__version__}, "
                        f"Keras {keras.__version__}",
             "settings": vars(args), "runs": {}}
  out_dir = pathlib.Path(args.out)
  out_dir.mkdir(parents=True, exist_ok=True)
  for name in args.datasets.split(","):
    train, test, second, image_shape = dataset_spec(name, args.image_size)
    key = second.name
    t0 = time.time()
    if name == "mnist":
      classifier = evaluation.train_classifier("mnist_pairs", label_key=key, epochs=5,
                                               seed=args.seed)
    else:
      clf_data = tdata.shapes_pairs("train", image_size=args.image_size, seed=1,
                                    num_examples=args.classifier_examples)
      classifier = evaluation.train_classifier(
          clf_data, label_key=key, epochs=5, seed=args.seed,
          name=f"shapes_pairs_{args.image_size}_{args.classifier_examples}")
    clf_acc = evaluation.classifier_accuracy(classifier, test.take(args.eval_examples),
                                             label_key=key)["accuracy"]
    print(f"[{name}] classifier accuracy on real test data {clf_acc:.3f} "
          f"({time.time() - t0:.0f} s)", flush=True)
    for kind in ("mvae", "vaegan"):
      keras.utils.set_random_seed(args.seed)
      model = build(kind, image_shape, second, args)
      ds = train.shuffle(2048, seed=args.seed).repeat().batch(args.batch_size,
                                                              drop_remainder=True)
      t0 = time.time()
      history = model.fit(ds.prefetch(tf.data.AUTOTUNE), steps_per_epoch=args.steps,
                          epochs=1, verbose=0,
                          callbacks=[callbacks.KLWarmup(max(1, args.steps // 3))])
      train_s = time.time() - t0
      metrics, grid = evaluate(model, test, key, classifier, args)
      metrics.update({"train_seconds": train_s, "steps": args.steps,
                      "classifier_accuracy_real": clf_acc,
                      "final_logs": {k: float(v[-1]) for k, v in history.history.items()}})
      results["runs"][f"{name}_{kind}"] = metrics
      png = out_dir / f"vaegan_{name}_{kind}.png"
      tdata.save_image_grid(np.clip(grid, 0, 1), png, ncols=len(grid) // 4)
      print(f"[{name}/{kind}] {train_s:.0f} s train; " + ", ".join(
          f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float)), flush=True)
  path = out_dir / "vaegan_vs_mvae.json"
  path.write_text(json.dumps(results, indent=2, sort_keys=True))
  print(f"wrote {path}")
  return results


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--datasets", default="mnist,shapes")
  p.add_argument("--steps", type=int, default=250)
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--image_size", type=int, default=32, help="shapes_pairs side")
  p.add_argument("--latent_dim", type=int, default=16)
  p.add_argument("--filters", type=int, default=16)
  p.add_argument("--discriminator_filters", type=int, default=8)
  p.add_argument("--learning_rate", type=float, default=1e-3)
  p.add_argument("--gamma", type=float, default=1.0,
                 help="decoder weight of the feature likelihood (Larsen CelebA: 1e-6)")
  p.add_argument("--feature_layer", type=int, default=3,
                 help="Dis_l: 3 = the 7x7 (28px) / 8x8 (32px) map, the map size of "
                      "Larsen's conv 4 at 64px (8x8)")
  p.add_argument("--margin", type=float, default=0.35,
                 help="equilibrium margin around 0.68 (negative: off)")
  p.add_argument("--eval_examples", type=int, default=500)
  p.add_argument("--classifier_examples", type=int, default=5000)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=str(HERE / "results"))
  args = p.parse_args()
  if args.margin < 0:
    args.margin = None
  run(args)


if __name__ == "__main__":
  main()
