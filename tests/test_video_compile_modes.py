"""Every video model under XLA (jit_compile) and under mixed_float16.

XLA: Keras resolves `jit_compile="auto"` to XLA on a GPU, so the time loops must
compile (bounded while loops); the XLA loss must equal the graph loss.

Mixed precision: every video model trains and predicts (float32 in and out).

The frame nets run in float16, the LSTMs' and heads' outputs meet the float32
noise / latents, and the rollout feeds float16 decoder outputs back into a float32
loop; this checks that dtypes line up everywhere and that the results are finite
and match the float32 model's shapes.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae.models import SVG
from tfmvae.models import VideoMVAE
from tfmvae.models import VideoVAEGAN
from tests.test_svg import TINY as SVG_TINY
from tests.test_video_mvae import TINY as MVAE_TINY
from tests.test_video_mvae import bouncing_squares

FACTORIES = {
    "svg-lp": lambda: SVG(prior="learned", **SVG_TINY),
    "svg-fp": lambda: SVG(prior="fixed", **SVG_TINY),
    "video-mvae": lambda: VideoMVAE(prior="learned", skip=True, cross_reconstruction=True,
                                    **MVAE_TINY),
    "video-vaegan": lambda: VideoVAEGAN(prior="learned", skip=True, discriminator_filters=4,
                                        feature_layer=3, discriminator_hidden_units=8,
                                        pixel_weight=1.0, **MVAE_TINY),
}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_fit_and_predict_under_mixed_float16(kind):
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    keras.utils.set_random_seed(0)
    model = FACTORIES[kind]()
    model.compile()
  finally:
    keras.config.set_dtype_policy(previous)
  frames = bouncing_squares(4, 6)
  history = model.fit(tf.data.Dataset.from_tensor_slices(frames).batch(2), epochs=1,
                      verbose=0).history
  for key, values in history.items():
    assert np.all(np.isfinite(values)), (key, values)
  out = model.predict(frames[:2, :3], num_future=4, num_samples=2, seed=3)
  assert out.dtype == tf.float32 and out.shape == (2, 2, 4, 16, 16, 1)
  out = out.numpy()
  assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0
  np.testing.assert_array_equal(
      out, model.predict(frames[:2, :3], num_future=4, num_samples=2, seed=3).numpy())
  # The frame networks really are float16 (the policy took effect).
  encoder = model.encoder if hasattr(model, "encoder") else model.encoder_a
  assert encoder.compute_dtype == "float16"


@pytest.mark.parametrize("kind", ["svg-lp", "video-mvae", "video-vaegan"])
def test_xla_fit_and_loss_equal_to_graph(kind):
  keras.utils.set_random_seed(0)
  model = FACTORIES[kind]()
  model.compile(jit_compile=True)
  frames = bouncing_squares(4, 6)
  # Two sequence lengths show the loops are not tied to one; the StackedLSTM loop
  # is the same layer in every model, so one length suffices for the slower ones.
  for steps in ((6, 8) if kind == "svg-lp" else (6,)):
    history = model.fit(tf.data.Dataset.from_tensor_slices(bouncing_squares(4, steps)).batch(2),
                        epochs=1, verbose=0).history
    assert all(np.all(np.isfinite(v)) for v in history.values()), history

  def loss(x):
    return model.compute_terms(x, training=False, use_mean=True)["loss"]

  x = tf.constant(frames)
  xla = tf.function(loss, jit_compile=True)(x).numpy()
  graph = tf.function(loss)(x).numpy()
  # float32, differently fused reductions over ~1e3 pixels x 5 steps.
  np.testing.assert_allclose(xla, graph, rtol=1e-4)
