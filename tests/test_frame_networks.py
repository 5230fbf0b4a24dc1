"""DCGAN frame encoder/decoder with skips and the StackedLSTM time loop."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmvae.networks import FrameDecoder
from tfmvae.networks import FrameEncoder
from tfmvae.networks import StackedLSTM
from tfmvae.networks.frame import num_frame_blocks


@pytest.mark.parametrize("size,blocks", [(16, 2), (32, 3), (64, 4)])
def test_encoder_decoder_shapes(size, blocks):
  enc = FrameEncoder(12, image_size=size, channels=3, filters=4)
  dec = FrameDecoder(image_size=size, channels=3, filters=4)
  x = tf.random.uniform([2, size, size, 3])
  h, skips = enc(x)
  assert h.shape == (2, 12)
  assert len(skips) == blocks == num_frame_blocks(size)
  assert [tuple(s.shape[1:]) for s in skips] == enc.skip_shapes()
  assert skips[0].shape == (2, size // 2, size // 2, 4)
  assert float(tf.reduce_max(tf.abs(h))) <= 1.0  # tanh
  y = dec(h, skips)
  assert y.shape == (2, size, size, 3)
  assert float(tf.reduce_min(y)) >= 0.0 and float(tf.reduce_max(y)) <= 1.0


def test_decoder_without_skips_and_logits():
  dec = FrameDecoder(image_size=16, filters=4, skip=False, output_activation=None)
  y = dec(tf.random.normal([3, 8]))
  assert y.shape == (3, 16, 16, 1)
  with pytest.raises(ValueError, match="skip maps"):
    FrameDecoder(image_size=16, filters=4)(tf.zeros([1, 8]), None)


@pytest.mark.parametrize("size", [8, 24, 48, 60])
def test_bad_sizes_name_the_size(size):
  with pytest.raises(ValueError, match=f"image_size={size}"):
    FrameEncoder(8, image_size=size)
  with pytest.raises(ValueError, match=f"image_size={size}"):
    FrameDecoder(image_size=size)


def test_config_round_trip():
  enc = FrameEncoder(8, image_size=32, channels=2, filters=4)
  dec = FrameDecoder(image_size=32, channels=2, filters=4, skip=False)
  enc2 = FrameEncoder.from_config(enc.get_config())
  dec2 = FrameDecoder.from_config(dec.get_config())
  assert enc2.get_config() == enc.get_config()
  assert dec2.get_config() == dec.get_config()
  assert keras.saving.get_registered_name(FrameEncoder) == "tfmvae>FrameEncoder"


def test_stacked_lstm_matches_step_loop_and_dynamic_length():
  rnn = StackedLSTM(8, num_layers=2, output_dim=3, output_activation="tanh")
  x = tf.random.normal([2, 5, 4])
  y, states = rnn(x)
  assert y.shape == (2, 5, 3) and len(states) == 4
  st = rnn.initial_state(2)
  for t in range(5):  # the compiled loop equals stepping by hand
    out, st = rnn.step(x[:, t], st)
    np.testing.assert_allclose(y[:, t], out, atol=1e-5)
  np.testing.assert_allclose(states[-1], st[-1], atol=1e-5)

  traced = tf.function(lambda v: rnn(v)[0],
                       input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
  assert traced(tf.zeros([2, 3, 4])).shape == (2, 3, 3)
  assert traced(tf.zeros([1, 7, 4])).shape == (1, 7, 3)
  assert traced(tf.zeros([1, 0, 4])).shape == (1, 0, 3)  # zero steps: initial states
