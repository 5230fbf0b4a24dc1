"""Per-frame video metrics (MSE, MAE, PSNR, SSIM) and best-of-N sample selection.

Every function takes frames [..., H, W, C] in [0, 1] (any number of leading axes,
e.g. [batch, samples, time]) and returns one value per frame, shape [...].

Conventions:
- MSE / MAE follow OpenSTL: per frame, SUMMED over the H * W * C pixels (not
  averaged); a papers' "MSE 22.4" on Moving MNIST is this sum.
- PSNR = 10 log10(max_val**2 / mean_pixels((x - y)**2)); the mean squared error is
  floored at `1e-10` so identical frames give 100 dB instead of +inf.
- SSIM is `tf.image.ssim` with the standard settings (Gaussian window 11, sigma 1.5,
  k1 0.01, k2 0.03, "valid" filtering, averaged over the map and channels), as
  SVG's evaluation (its `finn_ssim`). The window cannot exceed the frame: frames
  smaller than 11 pixels use `filter_size = min(11, H, W)` (only tiny test frames;
  such values are not comparable with 11-window SSIM).
- Best-of-N (Denton & Fergus 2018): per sequence, the sample with the highest mean
  SSIM over the predicted steps; all metrics are then reported for that sample.
"""
import numpy as np
import tensorflow as tf

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
PSNR_MIN_MSE = 1e-10


def _pair(x, y):
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.convert_to_tensor(y, tf.float32)
  if x.shape.rank is not None and x.shape.rank < 3:
    raise ValueError(f"frames must be [..., H, W, C], got shape {x.shape}")
  if x.shape.is_fully_defined() and y.shape.is_fully_defined():
    tf.broadcast_static_shape(x.shape, y.shape)  # raises on mismatch
  return x, y


def mse(x, y):
  """Per-frame squared error summed over pixels: sum_{h,w,c} (x - y)**2.

  Args:
    x, y: [..., H, W, C] frames in [0, 1] (broadcastable).

  Returns:
    [...] float32.
  """
  x, y = _pair(x, y)
  return tf.reduce_sum(tf.square(x - y), axis=[-3, -2, -1])


def mae(x, y):
  """Per-frame absolute error summed over pixels: sum_{h,w,c} |x - y|; [...]."""
  x, y = _pair(x, y)
  return tf.reduce_sum(tf.abs(x - y), axis=[-3, -2, -1])


def psnr(x, y, max_val=1.0):
  """Per-frame PSNR in dB: 10 log10(max_val**2 / max(mean (x - y)**2, 1e-10)); [...]."""
  x, y = _pair(x, y)
  mean_sq = tf.reduce_mean(tf.square(x - y), axis=[-3, -2, -1])
  return 10.0 * tf.math.log(max_val**2 / tf.maximum(mean_sq, PSNR_MIN_MSE)) / tf.math.log(10.0)


def ssim_filter_size(height, width):
  """The SSIM window used for an H x W frame: min(11, H, W)."""
  return int(min(SSIM_FILTER_SIZE, height, width))


def ssim(x, y, max_val=1.0):
  """Per-frame SSIM (tf.image.ssim, window min(11, H, W), sigma 1.5); [...].

  Args:
    x, y: [..., H, W, C] frames in [0, max_val], H and W statically known.
    max_val: dynamic range.

  Returns:
    [...] float32 in [-1, 1]; 1 for identical frames.
  """
  x, y = _pair(x, y)
  if x.shape != y.shape:
    shape = tf.broadcast_dynamic_shape(tf.shape(x), tf.shape(y))
    static = x.shape[-3:].merge_with(y.shape[-3:]) if x.shape.rank and y.shape.rank else None
    x, y = tf.broadcast_to(x, shape), tf.broadcast_to(y, shape)
    if static is not None:
      x = tf.ensure_shape(x, [None] * (x.shape.rank - 3) + static.as_list()) if x.shape.rank else x
      y = tf.ensure_shape(y, x.shape)
  height, width = x.shape[-3], x.shape[-2]
  if height is None or width is None:
    raise ValueError("ssim needs statically known frame height and width.")
  return tf.image.ssim(x, y, max_val=max_val, filter_size=ssim_filter_size(height, width),
                       filter_sigma=SSIM_FILTER_SIGMA, k1=SSIM_K1, k2=SSIM_K2)


def frame_metrics(x, y):
  """All four per-frame metrics as a dict {"mse", "mae", "psnr", "ssim"} of [...]."""
  return {"mse": mse(x, y), "mae": mae(x, y), "psnr": psnr(x, y), "ssim": ssim(x, y)}


def best_of_n(values, key="ssim"):
  """Selects, per sequence, the sample with the best mean `key` over time.

  Args:
    values: dict name -> [B, N, T] per-sample, per-step metric values (NumPy or TF).
    key: metric used for selection (higher is better; SSIM in SVG's protocol).

  Returns:
    (best, index): best a dict name -> [B, T] values of the selected sample (every
    metric reported for the SAME sample); index int [B].
  """
  values = {k: np.asarray(v) for k, v in values.items()}
  index = np.argmax(values[key].mean(axis=-1), axis=1)  # [B]
  rows = np.arange(index.shape[0])
  return {k: v[rows, index] for k, v in values.items()}, index
