"""Video metrics against NumPy references (tolerances stated per test)."""
import numpy as np
import pytest
import tensorflow as tf

from tfmvae import metrics


def _frames(seed, shape):
  return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def _np_gaussian(size, sigma):
  coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-coords**2 / (2 * sigma**2))
  g /= g.sum()
  return np.outer(g, g)


def _np_valid_filter(img, kernel):
  k = kernel.shape[0]
  h, w = img.shape
  out = np.zeros((h - k + 1, w - k + 1))
  for i in range(out.shape[0]):
    for j in range(out.shape[1]):
      out[i, j] = np.sum(img[i:i + k, j:j + k] * kernel)
  return out


def _np_ssim(x, y, size=11, sigma=1.5, k1=0.01, k2=0.03, max_val=1.0):
  """Wang et al. (2004) SSIM, Gaussian window, valid filtering, mean over map/channels."""
  c1, c2 = (k1 * max_val)**2, (k2 * max_val)**2
  kernel = _np_gaussian(size, sigma)
  vals = []
  for c in range(x.shape[-1]):
    a, b = x[..., c].astype(np.float64), y[..., c].astype(np.float64)
    mu_a, mu_b = _np_valid_filter(a, kernel), _np_valid_filter(b, kernel)
    saa = _np_valid_filter(a * a, kernel) - mu_a**2
    sbb = _np_valid_filter(b * b, kernel) - mu_b**2
    sab = _np_valid_filter(a * b, kernel) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    vals.append(ssim_map.mean())
  return np.mean(vals)


def _np_ssim_svg(x, y, win=7, data_range=2.0, k1=0.01, k2=0.03):
  """SVG's SSIM (skimage compare_ssim defaults on floats) in NumPy, one frame [H, W, C].

  Per channel, over every valid win x win window: means, sample variances and
  covariance (ddof=1), then the SSIM formula with C1 = (k1 L)**2, C2 = (k2 L)**2,
  L = data_range; the mean over windows, then over channels.
  """
  c1, c2 = (k1 * data_range)**2, (k2 * data_range)**2
  vals = []
  for c in range(x.shape[-1]):
    a = np.lib.stride_tricks.sliding_window_view(x[..., c].astype(np.float64), (win, win))
    b = np.lib.stride_tricks.sliding_window_view(y[..., c].astype(np.float64), (win, win))
    a = a.reshape(a.shape[:2] + (-1,))  # [H - win + 1, W - win + 1, win * win]
    b = b.reshape(b.shape[:2] + (-1,))
    mu_a, mu_b = a.mean(-1), b.mean(-1)
    var_a, var_b = a.var(-1, ddof=1), b.var(-1, ddof=1)
    cov = ((a - mu_a[..., None]) * (b - mu_b[..., None])).sum(-1) / (a.shape[-1] - 1)
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    vals.append(ssim_map.mean())
  return np.mean(vals)


def _blob(size=16, top=4, left=5, height=7, width=5):
  """A binary 'digit-like' block on a black frame, [size, size, 1]."""
  x = np.zeros((size, size, 1), np.float32)
  x[top:top + height, left:left + width] = 1.0
  return x


# ssim_svg computes in float64 (as the reference) and returns float32: the only
# difference is the float32 rounding of a value in [-1, 1] (<= 6e-8) plus float64
# summation order (~1e-15); 1e-6 absolute leaves margin and still catches any
# convention change (window, ddof, constants, cropping shift values by >= 1e-3).
SVG_ATOL = 1e-6


def test_ssim_svg_matches_numpy_reference_on_random_frames():
  x = _frames(0, (2, 3, 12, 10, 2))  # leading batch axes, 2 channels, H != W
  y = np.clip(x + 0.3 * _frames(1, x.shape) - 0.15, 0, 1)
  out = metrics.ssim_svg(x, y)
  assert out.shape == (2, 3) and out.dtype == tf.float32
  expected = [[_np_ssim_svg(x[i, j], y[i, j]) for j in range(3)] for i in range(2)]
  np.testing.assert_allclose(out, expected, atol=SVG_ATOL)
  rgb = _frames(2, (4, 9, 9, 3)), _frames(3, (4, 9, 9, 3))
  np.testing.assert_allclose(metrics.ssim_svg(*rgb),
                             [_np_ssim_svg(rgb[0][i], rgb[1][i]) for i in range(4)],
                             atol=SVG_ATOL)


def test_ssim_svg_matches_numpy_reference_on_shifted_blobs():
  x = _blob()
  shifted = [np.roll(x, s, axis=1) for s in (0, 1, 2, 4)] + [0.5 * x, np.zeros_like(x)]
  y = np.stack(shifted)  # [6, 16, 16, 1]
  out = metrics.ssim_svg(x[None], y).numpy()  # broadcast over the leading axis
  expected = [_np_ssim_svg(x, v) for v in shifted]
  np.testing.assert_allclose(out, expected, atol=SVG_ATOL)
  assert out[0] == pytest.approx(1.0, abs=1e-6)
  assert out[0] > out[1] > out[2] > out[3]  # a larger shift is less similar


def test_ssim_svg_identical_frames_and_known_values():
  x = _frames(5, (3, 8, 11, 2))
  np.testing.assert_allclose(metrics.ssim_svg(x, x), np.ones(3), atol=1e-6)
  # Constant frames a and b: zero variances, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
  # with C1 = (0.01 * 2)^2 = 4e-4: black vs white gives 4e-4 / 1.0004.
  black, white = np.zeros((1, 9, 9, 1)), np.ones((1, 9, 9, 1))
  np.testing.assert_allclose(metrics.ssim_svg(black, white), [4e-4 / 1.0004], rtol=1e-6)
  grey = np.full((1, 9, 9, 1), 0.5)
  np.testing.assert_allclose(metrics.ssim_svg(grey, white),
                             [(1.0 + 4e-4) / (1.25 + 4e-4)], rtol=1e-6)
  # skimage 0.26 `structural_similarity(x, y, data_range=2.0)` (defaults otherwise)
  # on this pair gives 0.559573921440978 (recorded once, skimage is not a dependency).
  a = np.zeros((12, 12, 1)); a[3:8, 4:7] = 1.0
  b = np.roll(a, 1, axis=1) * 0.75
  assert float(metrics.ssim_svg(a, b)) == pytest.approx(0.559573921440978, abs=SVG_ATOL)
  assert _np_ssim_svg(a, b) == pytest.approx(0.559573921440978, abs=1e-12)


def test_ssim_svg_differs_from_gaussian_and_small_frames():
  x = _blob()
  y = np.roll(x, 1, axis=1)
  assert float(metrics.ssim_svg(x, y)) != pytest.approx(float(metrics.ssim(x, y)), abs=0.01)
  assert metrics.ssim_svg_window(5, 9) == 5
  a, b = _frames(6, (2, 5, 9, 1)), _frames(7, (2, 5, 9, 1))
  np.testing.assert_allclose(metrics.ssim_svg(a, b),
                             [_np_ssim_svg(a[i], b[i], win=5) for i in range(2)], atol=SVG_ATOL)


def test_ssim_by_convention():
  x, y = _frames(8, (2, 16, 16, 1)), _frames(9, (2, 16, 16, 1))
  np.testing.assert_allclose(metrics.ssim_by_convention(x, y, "gaussian"), metrics.ssim(x, y))
  np.testing.assert_allclose(metrics.ssim_by_convention(x, y, "svg"), metrics.ssim_svg(x, y))
  with pytest.raises(ValueError, match="unknown SSIM convention 'skimage'"):
    metrics.ssim_by_convention(x, y, "skimage")
  assert metrics.check_ssim_convention("svg") == "ssim_svg"
  from tfmvae import configs  # pylint: disable=import-outside-toplevel
  assert tuple(metrics.SSIM_CONVENTIONS) == configs.SSIM_CONVENTIONS


def test_mse_mae_psnr_match_numpy():
  # float32 sums over 2*3*16*16 pixels: relative 1e-5.
  x, y = _frames(0, (2, 3, 16, 16, 1)), _frames(1, (2, 3, 16, 16, 1))
  sq = (x.astype(np.float64) - y)**2
  np.testing.assert_allclose(metrics.mse(x, y), sq.sum(axis=(-3, -2, -1)), rtol=1e-5)
  np.testing.assert_allclose(metrics.mae(x, y), np.abs(x - y).sum(axis=(-3, -2, -1)), rtol=1e-5)
  np.testing.assert_allclose(metrics.psnr(x, y), 10 * np.log10(1.0 / sq.mean(axis=(-3, -2, -1))),
                             rtol=1e-5)
  assert metrics.mse(x, y).shape == (2, 3)


def test_psnr_identical_frames_is_capped():
  x = _frames(0, (1, 8, 8, 1))
  np.testing.assert_allclose(metrics.psnr(x, x), [100.0], rtol=1e-6)


def test_ssim_identical_is_one_and_matches_numpy():
  x = _frames(0, (2, 16, 16, 2))
  y = np.clip(x + 0.2 * _frames(1, x.shape) - 0.1, 0, 1)
  np.testing.assert_allclose(metrics.ssim(x, x), [1.0, 1.0], atol=1e-6)
  # float32 Gaussian filtering vs float64 reference: absolute 1e-4.
  expected = [_np_ssim(x[i], y[i]) for i in range(2)]
  np.testing.assert_allclose(metrics.ssim(x, y), expected, atol=1e-4)


def test_ssim_small_frames_use_smaller_window():
  x, y = _frames(2, (3, 8, 8, 1)), _frames(3, (3, 8, 8, 1))
  assert metrics.ssim_filter_size(8, 8) == 8
  expected = [_np_ssim(x[i], y[i], size=8) for i in range(3)]
  np.testing.assert_allclose(metrics.ssim(x, y), expected, atol=1e-4)


def test_ssim_leading_axes():
  x, y = _frames(4, (2, 3, 4, 12, 12, 1)), _frames(5, (2, 3, 4, 12, 12, 1))
  out = metrics.ssim(x, y)
  assert out.shape == (2, 3, 4)
  np.testing.assert_allclose(out[1, 2, 3], _np_ssim(x[1, 2, 3], y[1, 2, 3]), atol=1e-4)


def test_frame_metrics_and_bad_shape():
  m = metrics.frame_metrics(_frames(0, (2, 16, 16, 1)), _frames(1, (2, 16, 16, 1)))
  assert set(m) == {"mse", "mae", "psnr", "ssim", "ssim_svg"}
  with pytest.raises(ValueError, match="H, W, C"):
    metrics.mse(np.zeros((4, 4)), np.zeros((4, 4)))


def test_best_of_n_selects_by_mean_ssim():
  ssim = np.array([[[0.1, 0.9], [0.6, 0.6], [0.2, 0.2]],
                   [[0.0, 0.0], [0.1, 0.1], [0.3, 0.0]]])  # [B=2, N=3, T=2]
  psnr = np.arange(12, dtype=float).reshape(2, 3, 2)
  best, index = metrics.best_of_n({"ssim": ssim, "psnr": psnr})
  np.testing.assert_array_equal(index, [1, 2])  # 0.6 > 0.5 ; 0.15 > 0.1
  np.testing.assert_array_equal(best["psnr"], [[2, 3], [10, 11]])
  np.testing.assert_array_equal(best["ssim"], [[0.6, 0.6], [0.3, 0.0]])


def test_best_of_n_direction_and_best_per_metric():
  # [B=2, N=3, T=2]; sample means per metric are in the comments.
  values = {
      "ssim": np.array([[[0.5, 0.5], [0.9, 0.7], [0.1, 0.1]],     # 0.5 0.8 0.1
                        [[0.2, 0.2], [0.1, 0.1], [0.4, 0.2]]]),   # 0.2 0.1 0.3
      "ssim_svg": np.array([[[0.6, 0.6], [0.5, 0.5], [0.9, 0.9]],  # 0.6 0.5 0.9
                            [[0.9, 0.9], [0.1, 0.1], [0.2, 0.2]]]),  # 0.9 0.1 0.2
      "mse": np.array([[[3., 3.], [1., 5.], [2., 2.]],            # 3 3 2
                       [[9., 9.], [1., 1.], [4., 4.]]]),          # 9 1 4
      "psnr": np.array([[[10., 30.], [20., 21.], [5., 5.]],       # 20 20.5 5
                        [[1., 1.], [7., 7.], [2., 2.]]]),         # 1 7 2
  }
  _, index = metrics.best_of_n(values, key="ssim")
  np.testing.assert_array_equal(index, [1, 2])
  best, index = metrics.best_of_n(values, key="ssim_svg")
  np.testing.assert_array_equal(index, [2, 0])
  np.testing.assert_array_equal(best["psnr"], [[5., 5.], [1., 1.]])  # the same sample
  _, index = metrics.best_of_n(values, key="mse")  # lower is better
  np.testing.assert_array_equal(index, [2, 1])
  _, index = metrics.best_of_n(values, key="mse", higher_is_better=True)
  np.testing.assert_array_equal(index, [0, 0])  # first of the tied maxima
  with pytest.raises(ValueError, match="'mae'"):
    metrics.best_of_n(values, key="mae")
  own, own_index = metrics.best_per_metric(values)
  want = {"ssim": [1, 2], "ssim_svg": [2, 0], "mse": [2, 1], "psnr": [1, 1]}
  for k, idx in want.items():
    np.testing.assert_array_equal(own_index[k], idx)
    np.testing.assert_array_equal(own[k], values[k][[0, 1], idx])


class _CopyLastModel:
  """A 'model' whose sample s is the last context frame plus noise of scale s/10."""

  def predict(self, context, num_future, num_samples=1, seed=None):
    context = np.asarray(context)
    rng = np.random.default_rng(list(seed))
    last = np.repeat(context[:, None, -1:], num_future, axis=2)  # [B, 1, F, H, W, C]
    noise = np.stack([s / 10 * rng.uniform(size=last.shape[:1] + last.shape[2:])
                      for s in range(num_samples)], axis=1)
    return np.clip(last + noise, 0, 1).astype(np.float32)


def test_evaluate_video_model_and_report(tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from tfmvae import evaluation_video  # pylint: disable=import-outside-toplevel
  base = np.kron(_frames(0, (5, 4, 4, 1)) > 0.5, np.ones((1, 4, 4, 1))).astype(np.float32)
  # Static sequences: copy-last is perfect (SSIM 1), noisier samples are worse.
  seqs = np.repeat(base[:, None], 7, axis=1)  # [5, 7, 16, 16, 1]
  res = evaluation_video.evaluate_video_model(_CopyLastModel(), seqs, n_past=3, n_future=4,
                                              num_samples=3, seed=0, batch_size=2,
                                              num_examples=2)
  assert res["config"]["num_sequences"] == 5
  assert res["config"]["ssim"] == "gaussian" and res["config"]["predict_kwargs"] == {}
  for group in ("best", "best_per_metric", "mean", "copy_last", "blank"):
    assert set(res["curves"][group]) == {"mse", "mae", "psnr", "ssim", "ssim_svg"}
    assert len(res["curves"][group]["ssim"]) == 4
    assert "ssim_svg_first10" in res["summary"][group]
  # Blank baseline: an all-zero prediction; its MSE is the targets' energy (NumPy).
  want_blank_mse = np.square(seqs[:, 3:7]).sum(axis=(2, 3, 4)).mean(axis=0)
  np.testing.assert_allclose(res["curves"]["blank"]["mse"], want_blank_mse, rtol=1e-5)
  np.testing.assert_allclose(res["curves"]["blank"]["mae"], want_blank_mse, rtol=1e-5)  # binary
  assert res["summary"]["blank"]["ssim_all"] < res["summary"]["copy_last"]["ssim_all"]
  # Sample 0 is exactly copy-last and the best by SSIM: best == baseline.
  np.testing.assert_allclose(res["curves"]["best"]["ssim"], res["curves"]["copy_last"]["ssim"],
                             rtol=1e-6)
  assert res["summary"]["mean"]["ssim_all"] < res["summary"]["best"]["ssim_all"]
  np.testing.assert_allclose(res["summary"]["best"]["mse_all"],
                             np.mean(res["curves"]["best"]["mse"]), rtol=1e-6)
  assert res["examples"]["ground_truth"].shape == (2, 7, 16, 16, 1)
  assert res["examples"]["samples"].shape == (2, 3, 4, 16, 16, 1)
  with pytest.raises(ValueError, match="n_past \\+ n_future"):
    evaluation_video.evaluate_video_model(_CopyLastModel(), seqs, 5, 5, num_samples=1)

  import tensorflow as tf  # pylint: disable=import-outside-toplevel,reimported
  ds = tf.data.Dataset.from_tensor_slices({"frames": seqs})
  res_ds = evaluation_video.evaluate_video_model(_CopyLastModel(), ds, 3, 4, num_samples=3,
                                                 batch_size=2)
  np.testing.assert_allclose(res_ds["curves"]["copy_last"]["ssim"],
                             res["curves"]["copy_last"]["ssim"], rtol=1e-6)

  paths = evaluation_video.write_report({"copy": res, "copy (dataset)": res_ds}, tmp_path)
  import json  # pylint: disable=import-outside-toplevel
  loaded = json.loads(paths["json"].read_text())
  assert set(loaded) == {"copy", "copy (dataset)"} and "examples" not in loaded["copy"]
  assert Image.open(paths["plot"]).size == (1080, 420)
  gif = Image.open(paths["gifs"][0])
  assert gif.size == (5 * 17 + 1, 2 * 17 + 1)  # 2 rows x (truth, best, 3 samples)


class _FixedSamplesModel:
  """Samples from the last context frame x: [0.5 x, x shifted right by 1 pixel, 0].

  On the static blob sequences below the conventions disagree: Gaussian SSIM
  prefers the dimmed frame (first blob: 0.64 vs 0.58), SVG's SSIM the shifted one
  (0.68 vs 0.64); MSE / PSNR prefer the dimmed frame, MAE the shifted one.
  """

  def __init__(self):
    self.calls = []

  def predict(self, context, num_future, num_samples=1, seed=None, **kwargs):
    self.calls.append(dict(kwargs, num_samples=num_samples, seed=list(seed)))
    last = np.asarray(context)[:, -1]  # [B, H, W, C]
    frames = np.stack([0.5 * last, np.roll(last, 1, axis=2), np.zeros_like(last)], axis=1)
    return np.repeat(frames[:, :, None], num_future, axis=2).astype(np.float32)


def test_evaluate_video_model_ssim_convention_and_best_per_metric(tmp_path):
  from tfmvae import evaluation_video  # pylint: disable=import-outside-toplevel
  blobs = np.stack([_blob(), _blob(top=3), _blob(width=6)])  # [3, 16, 16, 1]
  seqs = np.repeat(blobs[:, None], 4, axis=1)  # static: [3, 4, 16, 16, 1]
  target = seqs[:, 2:]
  samples = _FixedSamplesModel().predict(seqs[:, :2], 2, num_samples=3, seed=[0, 0])
  values = {k: v.numpy() for k, v in metrics.frame_metrics(samples, target[:, None]).items()}
  means = {k: v.mean(axis=-1) for k, v in values.items()}  # [B=3, S=3]
  want = {"gaussian": np.argmax(means["ssim"], 1), "svg": np.argmax(means["ssim_svg"], 1)}
  np.testing.assert_array_equal(want["gaussian"], [0, 0, 0])  # the dimmed frame
  np.testing.assert_array_equal(want["svg"], [1, 1, 1])  # the shifted frame
  rows = np.arange(3)
  results = {}
  for convention in ("gaussian", "svg"):
    model = _FixedSamplesModel()
    res = evaluation_video.evaluate_video_model(
        model, seqs, n_past=2, n_future=2, num_samples=3, batch_size=2, num_examples=3,
        ssim=convention, predict_kwargs={"batchnorm": "batch"})
    results[convention] = res
    assert res["config"]["ssim"] == convention
    assert res["config"]["predict_kwargs"] == {"batchnorm": "batch"}
    assert [c["batchnorm"] for c in model.calls] == ["batch", "batch"]  # 2 batches
    assert [c["seed"] for c in model.calls] == [[0, 0], [0, 1]]
    index = want[convention]
    for k in evaluation_video.METRICS:  # every metric of the one selected sample
      np.testing.assert_allclose(res["curves"]["best"][k], values[k][rows, index].mean(0),
                                 rtol=1e-6)
      np.testing.assert_allclose(res["curves"]["mean"][k], values[k].mean(1).mean(0),
                                 rtol=1e-6)
    np.testing.assert_array_equal(res["examples"]["best"], samples[rows, index])
    # Each metric for its own best sample, whatever the convention.
    own = {"mse": np.argmin(means["mse"], 1), "mae": np.argmin(means["mae"], 1),
           "psnr": np.argmax(means["psnr"], 1), "ssim": want["gaussian"],
           "ssim_svg": want["svg"]}
    np.testing.assert_array_equal(own["mse"], [0, 0, 0])
    np.testing.assert_array_equal(own["mae"], [1, 1, 1])
    for k, idx in own.items():
      np.testing.assert_allclose(res["curves"]["best_per_metric"][k],
                                 values[k][rows, idx].mean(0), rtol=1e-6)
      np.testing.assert_allclose(res["summary"]["best_per_metric"][f"{k}_all"],
                                 values[k][rows, idx].mean(), rtol=1e-6)
  # PSNR both ways: the SVG-SSIM-chosen sample (shifted) is below PSNR's own best (dimmed).
  svg = results["svg"]["summary"]
  assert svg["best"]["psnr_all"] < svg["best_per_metric"]["psnr_all"]
  gauss = results["gaussian"]["summary"]
  assert gauss["best"]["psnr_all"] == pytest.approx(gauss["best_per_metric"]["psnr_all"])
  assert gauss["best"]["ssim_svg_all"] < gauss["best_per_metric"]["ssim_svg_all"]
  paths = evaluation_video.write_report(results, tmp_path, name="conventions")
  import json  # pylint: disable=import-outside-toplevel
  loaded = json.loads(paths["json"].read_text())
  assert loaded["svg"]["config"]["ssim"] == "svg"
  assert "best_per_metric" in loaded["svg"]["summary"]
  with pytest.raises(ValueError, match="unknown SSIM convention 'ms-ssim'"):
    evaluation_video.evaluate_video_model(_FixedSamplesModel(), seqs, 2, 2, num_samples=3,
                                          ssim="ms-ssim")
  with pytest.raises(ValueError, match="seed"):
    evaluation_video.evaluate_video_model(_FixedSamplesModel(), seqs, 2, 2, num_samples=3,
                                          predict_kwargs={"seed": 1})
