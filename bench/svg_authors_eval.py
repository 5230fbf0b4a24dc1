"""The authors' trained SVG-LP, converted, evaluated by tfmvae-eval on SM-MNIST.

Converts `../shared/reference/svg_lp_smmnist/svg_lp_smmnist.npz` (edenton/svg's code,
3,662 steps at batch 100) with `tfmvae-convert`, then runs `tfmvae-eval` on the
project's SM-MNIST test split (MNIST digits 9,000-9,999, which the model never saw:
it trained on digits 0-4,999) with 5 context frames and 20 predicted, best of 100
samples, once per BatchNorm mode of generation ("moving": tfmvae's default;
"batch": the authors' generate script). Each mode's metrics JSON is kept in
--work_dir and a finished mode is not rerun, so the bench restarts where it stopped.
Writes bench/results/svg_authors_eval.json and prints a table.

  python bench/svg_authors_eval.py [--sequences 64] [--samples 100] [--work_dir runs/svg_authors]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_NPZ = ROOT.parent / "shared" / "reference" / "svg_lp_smmnist" / "svg_lp_smmnist.npz"
ROWS = (("best", "best of N (by the chosen SSIM)"), ("best_per_metric", "best of N per metric"),
        ("mean", "mean over samples"), ("copy_last", "copy last frame"), ("blank", "blank frame"))


def run(cmd):
  print("+", " ".join(cmd), flush=True)
  subprocess.run(cmd, check=True)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--checkpoint", default=str(DEFAULT_NPZ))
  ap.add_argument("--work_dir", default="runs/svg_authors")
  ap.add_argument("--sequences", type=int, default=64)
  ap.add_argument("--samples", type=int, default=100)
  ap.add_argument("--future", type=int, default=20)
  ap.add_argument("--modes", default="moving,batch")
  ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "svg_authors_eval.json"))
  a = ap.parse_args()
  work = pathlib.Path(a.work_dir)
  model_dir = work / "model"
  if not (model_dir / "config.json").exists():
    run(["tfmvae-convert", "--from=edenton_svg", f"--checkpoint={a.checkpoint}",
         f"--model_dir={model_dir}"])
  results = {}
  for mode in a.modes.split(","):
    out = work / f"metrics_{mode}.json"
    if not out.exists():
      start = time.time()
      run(["tfmvae-eval", f"--model_dir={model_dir}", f"--eval_sequences={a.sequences}",
           f"--eval_samples={a.samples}", f"--eval_future={a.future}",
           f"--generation_batchnorm={mode}", "--ssim=gaussian", f"--output={out}"])
      data = json.loads(out.read_text())
      data["wall_seconds"] = time.time() - start
      out.write_text(json.dumps(data))
    results[mode] = json.loads(out.read_text())
  summary = {"checkpoint": os.path.basename(a.checkpoint), "sequences": a.sequences,
             "samples": a.samples, "n_past": 5, "n_future": a.future,
             "machine": f"{os.cpu_count()} CPU cores", "modes": {}}
  for mode, data in results.items():
    summary["modes"][mode] = {"wall_seconds": data.get("wall_seconds"),
                              "summary": data["summary"], "curves": data["curves"]}
  pathlib.Path(a.output).write_text(json.dumps(summary, indent=1))
  for mode, data in results.items():
    print(f"\n## generation BatchNorm: {mode} ({data.get('wall_seconds', 0):.0f} s)")
    print("| row | SSIM@10 | SSIM@20 | SVG-SSIM@10 | SVG-SSIM@20 | PSNR@10 | PSNR@20 | MSE@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for key, label in ROWS:
      s = data["summary"][key]
      cells = [f"{s[m + '_' + h]:.3f} ± {s[m + '_' + h + '_ci95']:.3f}"
               for m in ("ssim", "ssim_svg") for h in ("first10", "all")]
      cells = [cells[0], cells[1], cells[2], cells[3]]
      cells += [f"{s['psnr_' + h]:.2f} ± {s['psnr_' + h + '_ci95']:.2f}" for h in ("first10", "all")]
      cells.append(f"{s['mse_first10']:.1f}")
      print(f"| {label} | " + " | ".join(cells) + " |")
  print(f"\nWrote {a.output}")


if __name__ == "__main__":
  sys.exit(main())
