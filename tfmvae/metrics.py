"""Per-frame video metrics (MSE, MAE, PSNR, two SSIM conventions) and best-of-N selection.

Every function takes frames [..., H, W, C] in [0, 1] (any number of leading axes,
e.g. [batch, samples, time]) and returns one value per frame, shape [...].

Conventions:
- MSE / MAE follow OpenSTL: per frame, SUMMED over the H * W * C pixels (not
  averaged); a papers' "MSE 22.4" on Moving MNIST is this sum.
- PSNR = 10 log10(max_val**2 / mean_pixels((x - y)**2)); the mean squared error is
  floored at `1e-10` so identical frames give 100 dB instead of +inf.
- SSIM, two conventions (Wang et al. 2004, per channel, averaged over channels):
  "gaussian" (`ssim`, the default): `tf.image.ssim` with Gaussian window 11,
    sigma 1.5, k1 0.01, k2 0.03, max_val 1, population (biased) local variances,
    "valid" filtering, averaged over the map; the convention of SRVP's evaluation
    and the tables that follow it. The window cannot exceed the frame: frames
    smaller than 11 pixels use `filter_size = min(11, H, W)` (only tiny test
    frames; such values are not comparable with 11-window SSIM).
  "svg" (`ssim_svg`): skimage's `compare_ssim` / `structural_similarity` with its
    defaults on float frames, as SVG's evaluation (`utils.eval_seq`) calls it on
    each channel: 7 x 7 uniform window, SAMPLE local variances and covariance
    (times N / (N - 1), N = 49), data_range 2 (the float dtype range [-1, 1], so
    C1 = (0.01 * 2)**2 and C2 = (0.03 * 2)**2), the map averaged over the valid
    region (skimage's reflect-padded filter cropped by 3 pixels per side).
    Frames smaller than 7 pixels use a min(7, H, W) window (tests only).
  The two are not comparable: with its 4x larger C1, C2 "svg" is usually the
  higher one on the same frames (e.g. 0.909 vs 0.859 for a 16 x 10 block on a
  64 x 64 black frame shifted by 3 pixels).
- Best-of-N (Denton & Fergus 2018): per sequence, the sample with the highest mean
  SSIM over the predicted steps; all metrics are then reported for that sample
  (`best_of_n`). Best per metric (SRVP, Franceschi et al. 2020): each metric is
  reported for the sample that is best by that same metric (`best_per_metric`:
  highest SSIM / PSNR, lowest MSE / MAE).
"""
import numpy as np
import tensorflow as tf

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SVG_WINDOW = 7
SSIM_SVG_DATA_RANGE = 2.0
PSNR_MIN_MSE = 1e-10
# SSIM convention -> its key in `frame_metrics`.
SSIM_CONVENTIONS = {"gaussian": "ssim", "svg": "ssim_svg"}
# Metric -> True when higher is better (best-of-N direction).
HIGHER_IS_BETTER = {"mse": False, "mae": False, "psnr": True, "ssim": True, "ssim_svg": True}


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


def _broadcast_frames(x, y):
  """x and y broadcast to one shape, keeping static H, W, C."""
  if x.shape != y.shape:
    shape = tf.broadcast_dynamic_shape(tf.shape(x), tf.shape(y))
    static = x.shape[-3:].merge_with(y.shape[-3:]) if x.shape.rank and y.shape.rank else None
    x, y = tf.broadcast_to(x, shape), tf.broadcast_to(y, shape)
    if static is not None:
      x = tf.ensure_shape(x, [None] * (x.shape.rank - 3) + static.as_list()) if x.shape.rank else x
      y = tf.ensure_shape(y, x.shape)
  return x, y


def ssim(x, y, max_val=1.0):
  """Per-frame SSIM (tf.image.ssim, window min(11, H, W), sigma 1.5); [...].

  Args:
    x, y: [..., H, W, C] frames in [0, max_val], H and W statically known.
    max_val: dynamic range.

  Returns:
    [...] float32 in [-1, 1]; 1 for identical frames.
  """
  x, y = _broadcast_frames(*_pair(x, y))
  height, width = x.shape[-3], x.shape[-2]
  if height is None or width is None:
    raise ValueError("ssim needs statically known frame height and width.")
  return tf.image.ssim(x, y, max_val=max_val, filter_size=ssim_filter_size(height, width),
                       filter_sigma=SSIM_FILTER_SIGMA, k1=SSIM_K1, k2=SSIM_K2)


def ssim_svg_window(height, width):
  """The box window of `ssim_svg` for an H x W frame: min(7, H, W)."""
  return int(min(SSIM_SVG_WINDOW, height, width))


def ssim_svg(x, y):
  """Per-frame SSIM in SVG's convention (skimage `compare_ssim` defaults on floats).

  For each channel, with a w x w box window (w = 7), N = w**2 pixels per window,
  local means mu = box(x), sample variances and covariance
    s_xx = N / (N - 1) * (box(x**2) - mu_x**2),  s_xy = N / (N - 1) * (box(x y) - mu_x mu_y),
  C1 = (0.01 L)**2 and C2 = (0.03 L)**2 with L = 2 (skimage's float data_range):
    SSIM_map = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x**2 + mu_y**2 + C1)(s_xx + s_yy + C2)),
  averaged over the (H - w + 1) x (W - w + 1) valid windows, then over channels.
  Computed in float64, as skimage does, then returned as float32 (the result
  matches skimage to float32 round-off, ~1e-8).

  Args:
    x, y: [..., H, W, C] frames in [0, 1] (broadcastable), H and W statically
      known. H, W >= 7 (smaller frames use a min(7, H, W) window: tests only).

  Returns:
    [...] float32 in [-1, 1]; 1 for identical frames.
  """
  x, y = _broadcast_frames(*_pair(x, y))
  height, width = x.shape[-3], x.shape[-2]
  if height is None or width is None:
    raise ValueError("ssim_svg needs statically known frame height and width.")
  win = ssim_svg_window(height, width)
  leading, static_leading = tf.shape(x)[:-3], x.shape[:-3]
  frames = tf.concat([[-1], tf.shape(x)[-3:]], axis=0)
  x = tf.reshape(tf.cast(x, tf.float64), frames)  # [B, H, W, C]
  y = tf.reshape(tf.cast(y, tf.float64), frames)
  box = lambda t: tf.nn.avg_pool2d(t, win, 1, "VALID")  # noqa: E731  per channel
  cov_norm = win * win / (win * win - 1.0)
  mu_x, mu_y = box(x), box(y)
  s_xx = cov_norm * (box(x * x) - mu_x * mu_x)
  s_yy = cov_norm * (box(y * y) - mu_y * mu_y)
  s_xy = cov_norm * (box(x * y) - mu_x * mu_y)
  c1 = (SSIM_K1 * SSIM_SVG_DATA_RANGE)**2
  c2 = (SSIM_K2 * SSIM_SVG_DATA_RANGE)**2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)) / (
      (mu_x * mu_x + mu_y * mu_y + c1) * (s_xx + s_yy + c2))
  value = tf.reduce_mean(ssim_map, axis=[1, 2, 3])  # map and channels (equal sizes)
  value = tf.cast(tf.reshape(value, leading), tf.float32)
  return tf.ensure_shape(value, static_leading) if static_leading.rank is not None else value


def ssim_by_convention(x, y, convention="gaussian"):
  """Per-frame SSIM of a named convention: "gaussian" (`ssim`) or "svg" (`ssim_svg`); [...]."""
  check_ssim_convention(convention)
  return ssim(x, y) if convention == "gaussian" else ssim_svg(x, y)


def check_ssim_convention(convention):
  """Returns the `frame_metrics` key of an SSIM convention; ValueError if unknown."""
  if convention not in SSIM_CONVENTIONS:
    raise ValueError(f"unknown SSIM convention {convention!r}; choose one of "
                     f"{sorted(SSIM_CONVENTIONS)}")
  return SSIM_CONVENTIONS[convention]


def frame_metrics(x, y):
  """All per-frame metrics as a dict {"mse", "mae", "psnr", "ssim", "ssim_svg"} of [...]."""
  return {"mse": mse(x, y), "mae": mae(x, y), "psnr": psnr(x, y), "ssim": ssim(x, y),
          "ssim_svg": ssim_svg(x, y)}


def _higher_is_better(key, higher_is_better):
  if higher_is_better is not None:
    return bool(higher_is_better)
  return HIGHER_IS_BETTER.get(key, True)


def _select(score, higher):
  """score [B, N, T] -> index int [B] of the best mean over T (first on ties)."""
  mean = np.asarray(score).mean(axis=-1)
  return np.argmax(mean, axis=1) if higher else np.argmin(mean, axis=1)


def best_of_n(values, key="ssim", higher_is_better=None):
  """Selects, per sequence, the sample with the best mean `key` over time.

  Args:
    values: dict name -> [B, N, T] per-sample, per-step metric values (NumPy or TF).
    key: metric used for selection (SSIM in SVG's protocol; "ssim_svg" for its
      own SSIM convention).
    higher_is_better: selection direction; None: `HIGHER_IS_BETTER[key]` (higher
      for SSIM / PSNR, lower for MSE / MAE; higher for unknown keys).

  Returns:
    (best, index): best a dict name -> [B, T] values of the selected sample (every
    metric reported for the SAME sample); index int [B].
  """
  values = {k: np.asarray(v) for k, v in values.items()}
  if key not in values:
    raise ValueError(f"selection metric {key!r} is not among {sorted(values)}")
  index = _select(values[key], _higher_is_better(key, higher_is_better))  # [B]
  rows = np.arange(index.shape[0])
  return {k: v[rows, index] for k, v in values.items()}, index


def best_per_metric(values):
  """Each metric for its own best sample (SRVP's protocol).

  For metric m with per-sample means mbar[b, n] = mean_t m[b, n, t], the sample
  n*_m[b] = argmax_n mbar[b, n] (SSIM, PSNR) or argmin_n (MSE, MAE; direction from
  `HIGHER_IS_BETTER`, higher for unknown names); different metrics may pick
  different samples of one sequence.

  Args:
    values: dict name -> [B, N, T] per-sample, per-step metric values.

  Returns:
    (best, index): dicts name -> [B, T] values of m's best sample, and
    name -> int [B] its index.
  """
  values = {k: np.asarray(v) for k, v in values.items()}
  best, index = {}, {}
  for key, v in values.items():
    index[key] = _select(v, _higher_is_better(key, None))
    best[key] = v[np.arange(v.shape[0]), index[key]]
  return best, index
