"""Tests of tfmvae.models.VAEGAN: feature likelihood, GAN terms, per-player optimizers,
save/reload/resume, distribution and mixed precision (tiny 16x16 models)."""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae import modalities as mods
from tfmvae.models import VAEGAN
from tfmvae.models.adversarial import equilibrium_flags

SIDE, CLASSES, BATCH = 16, 3, 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_model(**kwargs):
  kwargs.setdefault("gamma", 0.5)
  return VAEGAN([mods.image(shape=(SIDE, SIDE, 1), filters=4, hidden_units=(16,)),
                 mods.label(CLASSES, hidden_units=(16,))],
                latent_dim=4, discriminator_filters=4, feature_layer=3,
                discriminator_hidden_units=8, seed=3, **kwargs)


def make_batch(seed=0, n=BATCH, image_present=None):
  rng = np.random.default_rng(seed)
  mask = np.ones((n, 2), np.float32)
  if image_present is not None:
    mask[:, 0] = image_present
  return {"image": tf.constant(rng.uniform(size=(n, SIDE, SIDE, 1)).astype(np.float32)),
          "label": tf.constant(np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, n)]),
          "mask": tf.constant(mask)}


def make_dataset(num=8, batch=BATCH):
  b = make_batch(seed=1, n=num)
  return tf.data.Dataset.from_tensor_slices({k: v.numpy() for k, v in b.items()}).batch(batch)


def sgd_compile(model, encoder=0.0, decoder=0.0, discriminator=0.0):
  model.compile(encoder_optimizer=keras.optimizers.SGD(encoder),
                decoder_optimizer=keras.optimizers.SGD(decoder),
                discriminator_optimizer=keras.optimizers.SGD(discriminator))


def snapshot(variables):
  return [v.numpy().copy() for v in variables]


# ------------------------------------------------------------------ likelihood / terms
def _log_normal_np(x, loc):
  return np.sum(-0.5 * (x - loc)**2 - 0.5 * np.log(2 * np.pi), axis=(1, 2, 3))


@pytest.mark.parametrize("pixel_weight", [0.0, 2.0])
def test_feature_likelihood_matches_numpy(pixel_weight):
  model = make_model(pixel_weight=pixel_weight)
  batch = make_batch()
  params = tf.random.normal([BATCH, SIDE, SIDE, 1], seed=4)
  ll = model.log_likelihood(0, batch["image"], params, training=False).numpy()
  x_tilde = 1.0 / (1.0 + np.exp(-params.numpy()))
  _, f_real = model.discriminators[0](batch["image"], training=False)
  _, f_fake = model.discriminators[0](tf.constant(x_tilde), training=False)
  expected = _log_normal_np(f_real.numpy(), f_fake.numpy())
  x, logits = batch["image"].numpy(), params.numpy()
  # Bernoulli cross-entropy form of the pixel log-likelihood, summed over pixels.
  pixel = np.sum(x * logits - np.logaddexp(0.0, logits), axis=(1, 2, 3))
  expected = expected + pixel_weight * pixel
  # float32 sums over 8*8*8 features / 256 pixels: relative tolerance 1e-5.
  np.testing.assert_allclose(ll, expected, rtol=1e-5, atol=1e-3)
  # A non-image modality keeps its ordinary (categorical) likelihood.
  label_logits = tf.random.normal([BATCH, CLASSES], seed=5)
  ll_label = model.log_likelihood(1, batch["label"], label_logits, training=False).numpy()
  lp = label_logits.numpy() - np.log(np.sum(np.exp(label_logits.numpy()), -1, keepdims=True))
  np.testing.assert_allclose(ll_label, np.sum(batch["label"].numpy() * lp, -1), rtol=1e-5)


def test_gan_and_decoder_terms_match_numpy():
  model = make_model(gamma=0.25)
  present = np.array([1, 0, 1, 1], np.float32)  # Example 1 has no image.
  terms = model.compute_terms(make_batch(image_present=present), training=False)
  p_real = terms["d_real"]["image"].numpy()    # [B, n] (n = subsets decoding the image)
  p_fake = terms["d_fake"]["image"].numpy()
  p_prior = terms["d_prior"]["image"].numpy()  # [B]
  assert p_real.shape == (BATCH, 2) and p_fake.shape == (BATCH, 2)  # joint + image-only.
  d_loss = -(present * np.log(p_real).sum(1) + np.log(1 - p_fake).sum(1) + np.log(1 - p_prior))
  np.testing.assert_allclose(terms["discriminator_losses"][0].numpy(), d_loss, rtol=1e-4)
  gen = -(np.log(p_fake).sum(1) + np.log(p_prior))
  np.testing.assert_allclose(terms["generator_loss"].numpy(), gen, rtol=1e-4)
  recon_img, recon_lbl = (r.numpy() for r in terms["recon"])
  dec = gen - 0.25 * 1.0 * recon_img - 10.0 * recon_lbl  # gamma on images; lambda_label 10.
  np.testing.assert_allclose(terms["decoder_loss"].numpy(), dec, rtol=1e-4, atol=1e-3)
  # The encoder's loss has no GAN term: L_llike + L_prior only (MVAE's loss).
  assert terms["feature_nll"]["image"].numpy()[1] == 0.0  # Missing image: no term.
  assert terms["real_count"].numpy() == 3 * 2


# ------------------------------------------------------------------ players
def _restore_state(model, state):
  for v, value in zip(model.non_trainable_variables, state):
    v.assign(value)
  model.seed_generator.state.assign(state[-1])


def _save_state(model):
  return snapshot(model.non_trainable_variables) + [model.seed_generator.state.numpy()]


@pytest.mark.parametrize("player", ["encoder", "decoder", "discriminator"])
def test_each_optimizer_updates_only_its_players_weights(player):
  """One train_step with only `player`'s learning rate non-zero (SGD): its
  variables move by exactly -lr * grad(its own loss), all others stay put."""
  lr = 0.5
  model = make_model()
  sgd_compile(model, **{player: lr})
  batch = make_batch()
  state = _save_state(model)
  groups = model.player_variables()
  own = groups["discriminators"][0] if player == "discriminator" else groups[player]
  with tf.GradientTape() as tape:
    terms = model.compute_terms(batch, training=True)
    loss = {"encoder": terms["loss"], "decoder": terms["decoder_loss"],
            "discriminator": terms["discriminator_losses"][0]}[player]
    loss = tf.reduce_mean(loss)
  grads = tape.gradient(loss, own)
  _restore_state(model, state)  # Same noise and BatchNorm statistics for the step.
  before = {id(v): v.numpy().copy() for v in model.trainable_variables}
  model.train_step(batch)
  own_ids = {id(v) for v in own}
  assert len(own_ids) > 0
  moved = 0
  for v in model.trainable_variables:
    if id(v) in own_ids:
      continue
    np.testing.assert_array_equal(v.numpy(), before[id(v)], err_msg=v.path)
  for v, g in zip(own, grads):
    assert g is not None, v.path
    np.testing.assert_allclose(v.numpy() - before[id(v)], -lr * g.numpy(), rtol=1e-4,
                               atol=1e-6, err_msg=v.path)
    moved += int(np.any(v.numpy() != before[id(v)]))
  assert moved > len(own) // 2  # The player did learn.
  for opt in [model.encoder_optimizer, model.decoder_optimizer] + model.discriminator_optimizers:
    assert int(opt.iterations.numpy()) == 1
  assert int(model.train_steps.numpy()) == 1


def test_player_groups_partition_and_own_optimizer_state():
  model = VAEGAN([mods.image("a", shape=(SIDE, SIDE, 1), filters=4, hidden_units=(16,)),
                  mods.image("b", shape=(SIDE, SIDE, 1), filters=4, hidden_units=(16,))],
                 latent_dim=4, discriminator_filters=4, feature_layer=3,
                 discriminator_hidden_units=8)
  proto = keras.optimizers.RMSprop(3e-4)
  model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3), discriminator_optimizer=proto)
  assert len(model.discriminator_optimizers) == 2
  d0, d1 = model.discriminator_optimizers
  assert d0 is not d1 and d0 is not proto
  assert isinstance(d0, keras.optimizers.RMSprop) and float(d0.learning_rate.numpy()) == \
      pytest.approx(3e-4)
  ids = [{id(v) for v in vs} for _, vs in model.player_groups()]
  assert sum(len(s) for s in ids) == len(model.trainable_variables)
  assert len(set().union(*ids)) == len(model.trainable_variables)
  # Every optimizer holds slots for exactly its own player's variables (Adam: 2 per
  # variable, RMSprop: 1), built at compile time.
  for opt, variables in model.player_groups():
    per_var = 2 if isinstance(opt, keras.optimizers.Adam) else 1
    slots = sorted(tuple(v.shape) for v in opt.variables if len(v.shape) > 0)
    assert slots == sorted([tuple(v.shape) for v in variables] * per_var)


def test_compile_rejects_shared_or_single_optimizer():
  model = make_model()
  with pytest.raises(ValueError, match="encoder_optimizer="):
    model.compile(optimizer="adam")
  adam = keras.optimizers.Adam()
  with pytest.raises(ValueError, match="own optimizer instance"):
    model.compile(encoder_optimizer=adam, decoder_optimizer=adam)
  with pytest.raises(ValueError, match="image modality"):
    VAEGAN([mods.label(3)], latent_dim=2)


@pytest.mark.parametrize("equilibrium,skipped", [(100.0, "discriminator"), (-100.0, "decoder")])
def test_equilibrium_rule_skips_a_players_update(equilibrium, skipped):
  # Mean BCEs are in (0, ~10): e = 100 means "D wins too clearly" (skip D);
  # e = -100 means "D loses too clearly" (skip the decoder).
  model = make_model(equilibrium=equilibrium, equilibrium_margin=1.0)
  sgd_compile(model, 0.1, 0.1, 0.1)
  groups = model.player_variables()
  frozen = groups["decoder"] if skipped == "decoder" else groups["discriminators"][0]
  trained = groups["discriminators"][0] if skipped == "decoder" else groups["decoder"]
  frozen_before, trained_before = snapshot(frozen), snapshot(trained)
  history = model.fit(make_dataset(), epochs=1, verbose=0)  # 2 graph-mode steps.
  for v, b in zip(frozen, frozen_before):
    np.testing.assert_array_equal(v.numpy(), b)
  assert any(np.any(v.numpy() != b) for v, b in zip(trained, trained_before))
  opt = model.decoder_optimizer if skipped == "decoder" else model.discriminator_optimizers[0]
  other = model.discriminator_optimizers[0] if skipped == "decoder" else model.decoder_optimizer
  assert int(opt.iterations.numpy()) == 0 and int(other.iterations.numpy()) == 2
  assert history.history[f"update_rate_{skipped}"][-1] == 0.0


def test_equilibrium_flags_table():
  e, m = 0.68, 0.3
  cases = [((0.68, 0.68), (True, True)),   # Balanced: both train.
           ((0.2, 0.68), (False, True)),   # D too good on reals: pause D.
           ((0.68, 1.5), (True, False)),   # D fooled: pause the decoder.
           ((0.2, 1.5), (True, True))]     # Both would pause: train both.
  for (real, fake), expected in cases:
    d, g = equilibrium_flags(tf.constant(real), tf.constant(fake), e, m)
    assert (bool(d), bool(g)) == expected, (real, fake)


# ------------------------------------------------------------------ fit / save / resume
def test_fit_logs_every_player_and_no_untracked_loss():
  model = make_model(equilibrium_margin=0.5)
  model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))
  history = model.fit(make_dataset(), epochs=2, verbose=0, validation_data=make_dataset())
  keys = set(history.history)
  for key in ("loss_encoder", "loss_decoder", "loss_discriminator_image", "loss_generator",
              "kl", "nll_image", "nll_label", "feature_nll_image", "d_real_image",
              "d_fake_image", "d_prior_image", "update_rate_discriminator",
              "update_rate_decoder", "val_loss_encoder", "val_d_real_image"):
    assert key in keys, key
  assert "loss" not in keys
  assert {m.name for m in model.metrics} == {k for k in keys if not k.startswith("val_")}
  assert all(np.isfinite(v[-1]) for v in history.history.values())
  assert int(model.train_steps.numpy()) == 4


def _optimizer_state(model):
  opts = [model.encoder_optimizer, model.decoder_optimizer] + model.discriminator_optimizers
  return [[v.numpy().copy() for v in o.variables] for o in opts]


def _assert_same_state(a, b):
  assert len(a) == len(b)
  for sa, sb in zip(a, b):
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb):
      np.testing.assert_array_equal(x, y)


def test_keras_save_reload_keeps_every_optimizer(tmp_path):
  model = make_model()
  model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3),
                decoder_optimizer=keras.optimizers.Adam(2e-3),
                discriminator_optimizer=keras.optimizers.RMSprop(3e-4))
  model.fit(make_dataset(), epochs=1, verbose=0)
  path = str(tmp_path / "vaegan.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded, VAEGAN) and loaded.gamma == 0.5
  assert isinstance(loaded.discriminator_optimizers[0], keras.optimizers.RMSprop)
  assert float(loaded.decoder_optimizer.learning_rate.numpy()) == pytest.approx(2e-3)
  state = _optimizer_state(model)
  assert int(state[0][0]) == 2  # iterations
  assert any(np.any(s != 0) for s in state[2][1:])  # RMSprop slots were written.
  _assert_same_state(state, _optimizer_state(loaded))
  x = make_batch()
  for k, v in model.reconstruct(x).items():
    np.testing.assert_allclose(loaded.reconstruct(x)[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
  loaded.fit(make_dataset(), epochs=1, verbose=0)
  assert int(loaded.encoder_optimizer.iterations.numpy()) == 4


def test_tf_checkpoint_restores_iterations_and_slots(tmp_path):
  model = make_model()
  model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))
  model.fit(make_dataset(), epochs=1, verbose=0)
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
  fresh = make_model()
  fresh.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))
  status = tf.train.Checkpoint(model=fresh).restore(path)
  status.assert_existing_objects_matched()
  _assert_same_state(_optimizer_state(model), _optimizer_state(fresh))
  assert int(fresh.train_steps.numpy()) == 2
  # Every model variable, incl. the discriminator's BatchNorm statistics and the
  # sampling seed (held in lists that tf.train.Checkpoint does not follow by itself).
  assert any("moving_mean" in v.path for v in model.variables)
  for a, b in zip(model.variables, fresh.variables):
    assert a.path.split("/", 1)[-1] == b.path.split("/", 1)[-1]  # Model names differ.
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


class _Interrupt(keras.callbacks.Callback):
  def __init__(self, after):
    super().__init__()
    self.after, self.seen = after, 0

  def on_train_batch_end(self, batch, logs=None):
    self.seen += 1
    if self.seen == self.after:
      raise RuntimeError("interrupted")


class _Iterations(keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.first = None

  def on_train_batch_begin(self, batch, logs=None):
    if self.first is None:
      m = self.model
      self.first = [int(o.iterations.numpy()) for o in
                    [m.encoder_optimizer, m.decoder_optimizer] + m.discriminator_optimizers]


def test_backup_and_restore_resumes_every_optimizer(tmp_path):
  backup = str(tmp_path / "backup")
  model = make_model()
  model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))
  with pytest.raises(RuntimeError, match="interrupted"):
    model.fit(make_dataset(), epochs=3, verbose=0,  # 2 steps per epoch.
              callbacks=[keras.callbacks.BackupAndRestore(backup), _Interrupt(after=3)])
  resumed = make_model()
  resumed.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))
  probe = _Iterations()
  history = resumed.fit(make_dataset(), epochs=3, verbose=0,
                        callbacks=[keras.callbacks.BackupAndRestore(backup), probe])
  assert probe.first == [2, 2, 2]  # Restored from the end of epoch 1, not from 0.
  assert len(history.history["loss_encoder"]) == 2  # Epochs 2 and 3 only.
  for opt in [resumed.encoder_optimizer, resumed.decoder_optimizer,
              resumed.discriminator_optimizers[0]]:
    assert int(opt.iterations.numpy()) == 6
  assert int(resumed.train_steps.numpy()) == 6


# ------------------------------------------------------------------ subprocess tests
_SETUP = f"""
import sys
sys.path.insert(0, {os.path.join(ROOT, 'tests')!r})
"""


def _run(script):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  script = _SETUP + textwrap.dedent(script)
  out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  return out.stdout




def test_mirrored_strategy_on_two_logical_cpus():
  out = _run("""
  import tensorflow as tf
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  import keras, numpy as np
  import test_vaegan as t
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  assert strategy.num_replicas_in_sync == 2
  for margin in (None, 1.0):  # Plain updates, then the cross-replica conditional ones.
    with strategy.scope():
      model = t.make_model(equilibrium=100.0 if margin else 0.68, equilibrium_margin=margin)
      model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))
    before = [v.numpy().copy() for v in model.discriminators[0].trainable_variables]
    h = model.fit(t.make_dataset(), epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in h.history.values()), h.history
    d_iters = int(model.discriminator_optimizers[0].iterations.numpy())
    assert int(model.encoder_optimizer.iterations.numpy()) == 2
    assert int(model.decoder_optimizer.iterations.numpy()) == 2
    assert d_iters == (0 if margin else 2), d_iters
    same = all(np.array_equal(a, v.numpy()) for a, v in
               zip(before, model.discriminators[0].trainable_variables))
    assert same == bool(margin)
  print("MIRRORED_OK")
  """)
  assert "MIRRORED_OK" in out


def test_mixed_float16_trains_with_loss_scaled_optimizers(tmp_path):
  out = _run(f"""
  import keras, numpy as np
  keras.config.set_dtype_policy("mixed_float16")
  import test_vaegan as t
  LSO = keras.optimizers.LossScaleOptimizer
  model = t.make_model()
  model.compile(encoder_optimizer=keras.optimizers.Adam(1e-3))  # Plain: wrapped by compile.
  opts = [model.encoder_optimizer, model.decoder_optimizer] + model.discriminator_optimizers
  assert all(isinstance(o, LSO) for o in opts)
  assert model.discriminators[0].convs[1].compute_dtype == "float16"
  # Already wrapped (not wrapped twice). Initial scale 1: the default 2**15 overflows
  # float16 gradients of these summed losses for the first steps, and the loss-scale
  # optimizers then rightly skip those steps; scale 1 makes every step count.
  model.compile(encoder_optimizer=LSO(keras.optimizers.Adam(1e-3), initial_scale=1.0),
                decoder_optimizer=LSO(keras.optimizers.Adam(1e-3), initial_scale=1.0),
                discriminator_optimizer=[LSO(keras.optimizers.Adam(1e-3), initial_scale=1.0)])
  assert isinstance(model.encoder_optimizer.inner_optimizer, keras.optimizers.Adam)
  h = model.fit(t.make_dataset(), epochs=2, verbose=0)
  assert all(np.isfinite(v[-1]) for v in h.history.values()), h.history
  assert int(model.train_steps.numpy()) == 4
  opts = [model.encoder_optimizer, model.decoder_optimizer] + model.discriminator_optimizers
  assert [int(o.iterations.numpy()) for o in opts] == [4, 4, 4], [
      int(o.iterations.numpy()) for o in opts]
  path = {str(tmp_path / 'mp.keras')!r}
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded.decoder_optimizer, keras.optimizers.LossScaleOptimizer)
  a = [v.numpy() for v in model.decoder_optimizer.variables]
  b = [v.numpy() for v in loaded.decoder_optimizer.variables]
  assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
  print("MIXED_OK")
  """)
  assert "MIXED_OK" in out
