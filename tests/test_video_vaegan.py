"""Tests of tfmvae.models.VideoVAEGAN (Method II): feature terms vs NumPy, per-player
updates, equilibrium skipping, fit, .keras reload and prediction (16x16 frames)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae.models import VideoVAEGAN
from tests.test_video_mvae import TINY
from tests.test_video_mvae import bouncing_squares

STEPS = 4


def make_model(**kwargs):
  kwargs.setdefault("prior", "learned")
  return VideoVAEGAN(gamma=0.5, discriminator_filters=4, feature_layer=3,
                     discriminator_hidden_units=8, **TINY, **kwargs)


def frames(batch=2, seed=0):
  return tf.constant(bouncing_squares(batch, STEPS, seed=seed))


def test_feature_and_gan_terms_match_numpy():
  model = make_model()
  x = frames()
  model.seed_generator.state.assign([7, 0])
  terms = model.adversarial_terms(x, training=False)
  # Feature NLL of subset "ab": both modalities, summed over the 3 steps.
  expected = np.zeros(2)
  for k, m in enumerate(("a", "b")):
    target = terms["targets"][m].numpy().reshape(-1, 16, 16, 1)
    recon = terms["recon"]["ab"][m].numpy().reshape(-1, 16, 16, 1)
    _, f_real = model.discriminators[k](target, training=False)
    _, f_fake = model.discriminators[k](recon, training=False)
    d = (f_real.numpy() - f_fake.numpy()).reshape(2, STEPS - 1, -1)
    expected += np.sum(0.5 * d**2 + 0.5 * np.log(2 * np.pi), axis=(1, 2))
  # float32 sums over 3 x 8*8*8 features: relative tolerance 1e-5.
  np.testing.assert_allclose(terms["feature_nll"]["ab"].numpy(), expected, rtol=1e-5)
  # Discriminator a: reals (x2: subsets ab and a), fakes of ab and a, one prior sample.
  real, fake, prior = (p.numpy() for p in terms["d_probs"][0])
  assert real.shape == (2 * (STEPS - 1), 2) and fake.shape == (2 * (STEPS - 1), 2)
  d_loss = -(np.log(real).sum(1) + np.log(1 - fake).sum(1) + np.log(1 - prior))
  np.testing.assert_allclose(terms["discriminator_losses"][0].numpy(),
                             d_loss.reshape(2, STEPS - 1).sum(1), rtol=1e-4)
  likelihood = sum(terms["feature_nll"][s] for s in ("ab", "a", "b")).numpy()
  kl = sum(terms["kl"][s] for s in ("ab", "a", "b")).numpy()
  np.testing.assert_allclose(terms["loss"].numpy(), likelihood + model.beta * kl, rtol=1e-5)
  np.testing.assert_allclose(terms["decoder_loss"].numpy(),
                             0.5 * likelihood + terms["generator_loss"].numpy(), rtol=1e-5)


@pytest.mark.parametrize("player", ["encoder", "decoder", "discriminator"])
def test_each_optimizer_updates_only_its_players_weights(player):
  lr = 0.5
  model = make_model()
  rates = {"encoder": 0.0, "decoder": 0.0, "discriminator": 0.0, player: lr}
  model.compile(encoder_optimizer=keras.optimizers.SGD(rates["encoder"]),
                decoder_optimizer=keras.optimizers.SGD(rates["decoder"]),
                discriminator_optimizer=keras.optimizers.SGD(rates["discriminator"]))
  groups = model.player_variables()
  own = groups[player] if player != "discriminator" else (
      groups["discriminators"][0] + groups["discriminators"][1])
  x = frames()
  state = [v.numpy() for v in model.non_trainable_variables]
  seed = model.seed_generator.state.numpy()
  with tf.GradientTape() as tape:
    terms = model.adversarial_terms(x, training=True)
    if player == "discriminator":
      loss = tf.reduce_mean(terms["discriminator_losses"][0] + terms["discriminator_losses"][1])
    else:
      loss = tf.reduce_mean(terms["loss" if player == "encoder" else "decoder_loss"])
  grads = tape.gradient(loss, own)
  for v, value in zip(model.non_trainable_variables, state):
    v.assign(value)
  model.seed_generator.state.assign(seed)
  before = {id(v): v.numpy().copy() for v in model.trainable_variables}
  model.train_step(x)
  own_ids = {id(v) for v in own}
  for v in model.trainable_variables:
    if id(v) not in own_ids:
      np.testing.assert_array_equal(v.numpy(), before[id(v)], err_msg=v.path)
  for v, g in zip(own, grads):
    assert g is not None, v.path
    np.testing.assert_allclose(v.numpy() - before[id(v)], -lr * g.numpy(), rtol=1e-4,
                               atol=1e-6, err_msg=v.path)
  assert sum(int(np.any(v.numpy() != before[id(v)])) for v in own) > len(own) // 2


def test_fit_equilibrium_reload_and_predict(tmp_path):
  model = make_model(equilibrium=100.0, equilibrium_margin=1.0)  # D "wins": skip D.
  model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))
  data = tf.data.Dataset.from_tensor_slices(bouncing_squares(4, STEPS, seed=1)).batch(2)
  d_before = [v.numpy().copy() for v in model.discriminators[1].trainable_variables]
  history = model.fit(data, epochs=1, verbose=0)
  assert "loss" not in history.history
  assert all(np.isfinite(v[-1]) for v in history.history.values())
  assert history.history["update_rate_discriminator"][-1] == 0.0
  assert int(model.encoder_optimizer.iterations.numpy()) == 2
  assert int(model.discriminator_optimizers[1].iterations.numpy()) == 0
  for a, v in zip(d_before, model.discriminators[1].trainable_variables):
    np.testing.assert_array_equal(a, v.numpy())
  path = str(tmp_path / "m2.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, VideoVAEGAN) and loaded.equilibrium_margin == 1.0
  for a, b in zip([model.encoder_optimizer, model.decoder_optimizer]
                  + model.discriminator_optimizers,
                  [loaded.encoder_optimizer, loaded.decoder_optimizer]
                  + loaded.discriminator_optimizers):
    assert len(a.variables) == len(b.variables)
    for x, y in zip(a.variables, b.variables):
      np.testing.assert_array_equal(x.numpy(), y.numpy())
  context = frames(1)[:, :3]
  out = model.predict(context, num_future=2, num_samples=2, seed=3)
  assert out.shape == (1, 2, 2, 16, 16, 1)
  np.testing.assert_allclose(loaded.predict(context, num_future=2, num_samples=2, seed=3),
                             out, rtol=1e-5, atol=1e-6)
