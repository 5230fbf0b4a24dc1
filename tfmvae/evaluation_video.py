"""Video prediction evaluation protocol (SVG's best-of-N) and its report.

Protocol (Denton & Fergus 2018, edenton/svg generate_svg_lp.py):
1. For each test sequence, condition on the first `n_past` frames and draw
   `num_samples` futures of `n_future` frames (`model.predict`, with optional
   extra keyword arguments `predict_kwargs`).
2. Score every sample per frame: MSE and MAE (summed over pixels, OpenSTL),
   PSNR, SSIM in two conventions: "ssim" (Gaussian window 11, the default;
   SRVP's tables) and "ssim_svg" (7 x 7 box window, sample covariance, data_range
   2: SVG's `utils.eval_seq`); see `tfmvae.metrics`.
3. "best": per sequence, the sample with the highest mean SSIM over all
   `n_future` predicted steps, SSIM of the convention `ssim` ("gaussian" ->
   "ssim", "svg" -> "ssim_svg"); every metric is reported for that one sample
   (SVG's protocol; the "first10" summary of a 20-step evaluation keeps that
   selection, so it can be slightly below a separate n_future=10 evaluation).
   "best_per_metric": each metric for the sample that is best by that metric's
   own mean over the steps (highest SSIM / PSNR, lowest MSE / MAE; SRVP's
   protocol), so one sequence may contribute different samples to different
   metrics; PSNR is thus reported both for the SSIM-chosen sample ("best") and
   for its own best. "mean": every metric averaged over the samples (the
   expected score of a random sample).
4. Curves are per future step averaged over sequences; summaries average the
   first 10 steps ("first10") and all steps ("all"), with a 95% half-interval over
   sequences (1.96 * std / sqrt(num_sequences)).
5. Baselines on the same sequences: copy-last-frame (repeat the last context
   frame) and blank-frame (an all-zero frame, the empty background of Moving
   MNIST). The blank baseline is there because SSIM on sparse frames rewards an
   empty prediction: on 64x64 Stochastic Moving MNIST a black frame scores SSIM
   0.674 over the first 10 future steps against copy-last's 0.565 (48 test
   sequences, BENCHMARKS.md), since every background window of a prediction that
   carries even a faint haze (0.01) loses about half its SSIM. Read an SSIM
   "win" over copy-last next to this baseline.

`write_report` writes the JSON, a PIL line plot of SSIM (Gaussian) and PSNR per
step of the "best" and "mean" groups and the baselines for every model compared
(no matplotlib dependency), and GIFs of ground truth vs. samples.
"""
import json
import pathlib
import time

import numpy as np
import tensorflow as tf

from tfmvae import metrics as video_metrics

METRICS = ("mse", "mae", "psnr", "ssim", "ssim_svg")
GROUPS = ("best", "best_per_metric", "mean", "copy_last", "blank")
_PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
            (140, 86, 75), (227, 119, 194), (23, 190, 207)]
_BASELINE_COLOR = (90, 90, 90)
_BLANK_COLOR = (0, 0, 0)


def _batches(sequences, batch_size):
  """Yields float32 NumPy batches [B, T, H, W, C] from arrays or tf.data."""
  if isinstance(sequences, tf.data.Dataset):
    spec = sequences.element_spec
    if isinstance(spec, dict):
      sequences = sequences.map(lambda d: d["frames"])
      spec = sequences.element_spec
    if spec.shape.rank == 4:
      sequences = sequences.batch(batch_size)
    for batch in sequences.as_numpy_iterator():
      yield np.asarray(batch, np.float32)
    return
  if isinstance(sequences, dict):
    sequences = sequences["frames"]
  sequences = np.asarray(sequences, np.float32)
  if sequences.ndim != 5:
    raise ValueError(f"sequences must be [N, T, H, W, C], got shape {sequences.shape}")
  for start in range(0, sequences.shape[0], batch_size):
    yield sequences[start:start + batch_size]


def _numpy_metrics(pred, target):
  return {k: v.numpy() for k, v in video_metrics.frame_metrics(pred, target).items()}


def _summaries(per_step):
  """per_step: dict metric -> [N, F] per-sequence values -> summary dict."""
  out = {}
  for name, values in per_step.items():
    for label, sl in (("first10", slice(0, 10)), ("all", slice(None))):
      seq_means = values[:, sl].mean(axis=1)
      out[f"{name}_{label}"] = float(seq_means.mean())
      out[f"{name}_{label}_ci95"] = float(
          1.96 * seq_means.std(ddof=1) / np.sqrt(len(seq_means))) if len(seq_means) > 1 else 0.0
  return out


def _jsonable_kwargs(kwargs):
  """predict_kwargs as recorded in the config: plain values kept, others repr()."""
  plain = (str, int, float, bool, type(None))
  return {str(k): v if isinstance(v, plain) else repr(v) for k, v in kwargs.items()}


def evaluate_video_model(model, sequences, n_past, n_future, num_samples=100, seed=0,
                         batch_size=8, num_examples=4, max_sequences=None, ssim="gaussian",
                         predict_kwargs=None):
  """Runs SVG's best-of-N protocol, SRVP's best-per-metric and the baselines.

  Args:
    model: any video model with `predict(context, num_future, num_samples, seed,
      **predict_kwargs)` -> [B, S, F, H, W, C] (SVG, VideoMVAE).
    sequences: [N, T, H, W, C] array, or a tf.data.Dataset of unbatched frames
      [T, H, W, C] (or dicts with "frames"); T >= n_past + n_future.
    n_past: conditioning frames.
    n_future: predicted frames scored.
    num_samples: N samples per sequence for best-of-N (100 in SVG's paper).
    seed: base seed; batch i uses the stateless seed [seed, i].
    batch_size: sequences per `predict` call (memory: batch * num_samples frames).
    num_examples: sequences kept (with ground truth and samples) for GIFs.
    max_sequences: optional cap on the number of sequences evaluated.
    ssim: SSIM convention that selects the "best" sample: "gaussian" (metric
      "ssim") or "svg" (metric "ssim_svg", SVG's own evaluation). Both SSIMs are
      reported in every group either way.
    predict_kwargs: optional dict of extra keyword arguments of every
      `model.predict` call (e.g. {"batchnorm": "batch"} for SVG); may not set
      `num_samples` or `seed`.

  Returns:
    dict with "config" (n_past, n_future, num_samples, num_sequences, seed, ssim,
    predict_kwargs), "curves": {group: {metric: list [n_future]}} and "summary":
    {group: {"ssim_first10", "ssim_all", ... (+ "_ci95")}} for the groups "best",
    "best_per_metric", "mean", "copy_last", "blank" and the metrics mse, mae,
    psnr, ssim, ssim_svg; "seconds", and "examples" (NumPy arrays, not
    serialized): "ground_truth" [E, n_past + n_future, H, W, C], "best"
    [E, n_future, ...] (the SSIM-selected sample), "samples" [E, min(S, 3),
    n_future, ...].
  """
  select = video_metrics.check_ssim_convention(ssim)
  predict_kwargs = dict(predict_kwargs or {})
  reserved = sorted({"num_samples", "seed"} & set(predict_kwargs))
  if reserved:
    raise ValueError(f"predict_kwargs may not set {reserved}: they are arguments of "
                     "evaluate_video_model")
  per = {g: {k: [] for k in METRICS} for g in GROUPS}
  examples = {"ground_truth": [], "best": [], "samples": []}
  total = 0
  start = time.time()
  for index, batch in enumerate(_batches(sequences, batch_size)):
    if max_sequences is not None and total >= max_sequences:
      break
    if max_sequences is not None:
      batch = batch[:max_sequences - total]
    if batch.shape[1] < n_past + n_future:
      raise ValueError(f"sequences have {batch.shape[1]} frames; n_past + n_future = "
                       f"{n_past + n_future} are needed")
    context = batch[:, :n_past]
    target = batch[:, n_past:n_past + n_future]
    samples = np.asarray(model.predict(context, n_future, num_samples=num_samples,
                                       seed=[int(seed), index], **predict_kwargs))
    values = _numpy_metrics(samples, target[:, None])  # each [B, S, F]
    best, best_index = video_metrics.best_of_n(values, key=select)
    own_best, _ = video_metrics.best_per_metric(values)
    copy = _numpy_metrics(np.repeat(context[:, -1:], n_future, axis=1), target)
    blank = _numpy_metrics(np.zeros_like(target), target)
    for k in METRICS:
      per["best"][k].append(best[k])
      per["best_per_metric"][k].append(own_best[k])
      per["mean"][k].append(values[k].mean(axis=1))
      per["copy_last"][k].append(copy[k])
      per["blank"][k].append(blank[k])
    keep = min(num_examples - len(examples["ground_truth"]), batch.shape[0])
    for i in range(max(keep, 0)):
      examples["ground_truth"].append(batch[i, :n_past + n_future])
      examples["best"].append(samples[i, best_index[i]])
      examples["samples"].append(samples[i, :3])
    total += batch.shape[0]
  if total == 0:
    raise ValueError("no sequences to evaluate")
  per = {g: {k: np.concatenate(v, axis=0) for k, v in d.items()} for g, d in per.items()}
  return {
      "config": {"n_past": int(n_past), "n_future": int(n_future),
                 "num_samples": int(num_samples), "num_sequences": int(total),
                 "seed": int(seed), "ssim": ssim,
                 "predict_kwargs": _jsonable_kwargs(predict_kwargs)},
      "curves": {g: {k: v.mean(axis=0).tolist() for k, v in d.items()} for g, d in per.items()},
      "summary": {g: _summaries(d) for g, d in per.items()},
      "seconds": time.time() - start,
      "examples": {k: np.stack(v) for k, v in examples.items() if v},
  }


# ------------------------------------------------------------------ report
def _as_mapping(results):
  if "curves" in results:
    return {"model": results}
  return dict(results)


def _json_ready(result):
  return {k: v for k, v in result.items() if k != "examples"}


def write_report(results, output_dir, name="video_eval", gif_fps=4.0):
  """Writes `<name>.json`, `<name>.png` and `<name>_<model>.gif` files.

  Args:
    results: one `evaluate_video_model` result, or a dict {model name: result}
      (compared in one plot; the copy-last baseline is drawn from the first).
    output_dir: directory (created).
    name: file name stem.
    gif_fps: GIF frame rate.

  Returns:
    dict of written paths {"json": ..., "plot": ..., "gifs": [...]}.
  """
  results = _as_mapping(results)
  out = pathlib.Path(output_dir)
  out.mkdir(parents=True, exist_ok=True)
  paths = {"json": out / f"{name}.json", "plot": out / f"{name}.png", "gifs": []}
  paths["json"].write_text(json.dumps({k: _json_ready(v) for k, v in results.items()},
                                      indent=1, sort_keys=True))
  plot_curves(results, paths["plot"])
  for model_name, result in results.items():
    ex = result.get("examples")
    if not ex:
      continue
    gif = out / f"{name}_{_slug(model_name)}.gif"
    save_comparison_gif(ex, result["config"]["n_past"], gif, fps=gif_fps)
    paths["gifs"].append(gif)
  return paths


def _slug(text):
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text)).strip("_") or "model"


def save_comparison_gif(examples, n_past, path, fps=4.0):
  """GIF with one row per sequence: ground truth | best sample | random samples.

  Predicted columns show the true context frames, then the model's frames.
  """
  gt = np.asarray(examples["ground_truth"])  # [E, T, H, W, C]
  ctx = gt[:, :n_past]
  columns = [gt, np.concatenate([ctx, examples["best"]], axis=1)]
  samples = np.asarray(examples["samples"])  # [E, k, F, ...]
  for j in range(samples.shape[1]):
    columns.append(np.concatenate([ctx, samples[:, j]], axis=1))
  tiles = np.stack(columns, axis=1)  # [E, cols, T, H, W, C]
  e, cols = tiles.shape[:2]
  tiles = tiles.reshape((e * cols,) + tiles.shape[2:])
  try:
    from tfmvae.data.visualize import save_video_gif  # pylint: disable=import-outside-toplevel
  except ImportError:
    save_video_gif = _save_video_gif
  return save_video_gif(tiles, path, fps=fps, ncols=cols)


def _save_video_gif(frames, path, fps=4.0, ncols=1, padding=1):
  """Fallback GIF writer: [N, T, H, W, C] in [0, 1] as a grid with ncols columns."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  frames = np.clip(np.asarray(frames, np.float32), 0, 1)
  n, t, h, w, c = frames.shape
  rows = -(-n // ncols)
  images = []
  for step in range(t):
    grid = np.ones((rows * (h + padding) + padding, ncols * (w + padding) + padding, c),
                   np.float32)
    for i in range(n):
      r, k = divmod(i, ncols)
      y0, x0 = padding + r * (h + padding), padding + k * (w + padding)
      grid[y0:y0 + h, x0:x0 + w] = frames[i, step]
    arr = (grid * 255).round().astype(np.uint8)
    images.append(Image.fromarray(arr[..., 0] if c == 1 else arr))
  path = pathlib.Path(path)
  images[0].save(path, save_all=True, append_images=images[1:],
                 duration=int(round(1000 / fps)), loop=0)
  return path


def plot_curves(results, path, width=1080, height=420):
  """PIL line plot: SSIM (Gaussian, "ssim") and PSNR per future step, best-of-N
  (thick; selected by the result's `config["ssim"]` convention) and mean over
  samples (thin) for each model, copy-last-frame in grey, blank frame in thin
  black. The "best_per_metric" group is in the JSON only."""
  from PIL import Image, ImageDraw, ImageFont  # pylint: disable=import-outside-toplevel
  results = _as_mapping(results)
  image = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(image)
  font = ImageFont.load_default()
  first = next(iter(results.values()))
  series = []  # (label, color, line width, {metric: curve})
  for i, (model_name, result) in enumerate(results.items()):
    color = _PALETTE[i % len(_PALETTE)]
    series.append((f"{model_name} best", color, 3, result["curves"]["best"]))
    series.append((f"{model_name} mean", color, 1, result["curves"]["mean"]))
  series.append(("copy last frame", _BASELINE_COLOR, 2, first["curves"]["copy_last"]))
  if "blank" in first["curves"]:
    series.append(("blank frame", _BLANK_COLOR, 1, first["curves"]["blank"]))
  legend_w = 300
  panel_w = (width - legend_w) // 2
  for p, metric in enumerate(("ssim", "psnr")):
    _plot_panel(draw, font, series, metric, x0=p * panel_w, width=panel_w, height=height)
  y = 30
  for label, color, lw, _ in series:
    x = width - legend_w + 5
    draw.line([(x, y + 5), (x + 22, y + 5)], fill=color, width=lw)
    draw.text((x + 28, y), label[:44], fill="black", font=font)
    y += 16
  cfg = first["config"]
  draw.text((width - legend_w + 5, y + 10),
            f"n_past={cfg['n_past']} N={cfg['num_samples']}\n"
            f"{cfg['num_sequences']} sequences\n"
            f"best by {cfg.get('ssim', 'gaussian')} SSIM", fill="black", font=font)
  image.save(path)
  return path


def _plot_panel(draw, font, series, metric, x0, width, height):
  left, right, top, bottom = x0 + 55, x0 + width - 15, 30, height - 40
  values = [v for _, _, _, curves in series for v in curves[metric] if np.isfinite(v)]
  lo, hi = min(values), max(values)
  pad = 0.05 * (hi - lo or 1.0)
  lo, hi = lo - pad, hi + pad
  steps = max(len(curves[metric]) for _, _, _, curves in series)
  sx = lambda i: left + (right - left) * (i / max(steps - 1, 1))  # noqa: E731
  sy = lambda v: bottom - (bottom - top) * ((v - lo) / (hi - lo))  # noqa: E731
  draw.rectangle([left, top, right, bottom], outline="black")
  for k in range(6):
    v = lo + (hi - lo) * k / 5
    draw.line([(left - 4, sy(v)), (left, sy(v))], fill="black")
    draw.line([(left, sy(v)), (right, sy(v))], fill=(230, 230, 230))
    draw.text((x0 + 5, sy(v) - 6), f"{v:.3g}", fill="black", font=font)
  tick = 5 if steps > 10 else 1
  for i in range(0, steps, tick):
    draw.line([(sx(i), bottom), (sx(i), bottom + 4)], fill="black")
    draw.text((sx(i) - 4, bottom + 6), str(i + 1), fill="black", font=font)
  draw.text(((left + right) // 2 - 40, height - 18), "future step", fill="black", font=font)
  draw.text((left, 10), metric.upper() + " per step", fill="black", font=font)
  for _, color, lw, curves in series:
    pts = [(sx(i), sy(v)) for i, v in enumerate(curves[metric]) if np.isfinite(v)]
    if len(pts) > 1:
      draw.line(pts, fill=color, width=lw)
