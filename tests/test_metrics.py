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
  assert set(m) == {"mse", "mae", "psnr", "ssim"}
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
  for group in ("best", "mean", "copy_last", "blank"):
    assert set(res["curves"][group]) == {"mse", "mae", "psnr", "ssim"}
    assert len(res["curves"][group]["ssim"]) == 4
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
