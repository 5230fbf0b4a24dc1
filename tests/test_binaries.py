"""The binaries end to end (subprocesses, default behaviour on flags/smoke.flags),
resume after SIGTERM, and the bad-input contract (one line, exit status 2, nothing
written). Subprocesses are few: each costs a TensorFlow import."""
import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE = f"--flagfile={ROOT / 'flags' / 'smoke.flags'}"


def _env(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFMVAE_CACHE_DIR=str(tmp_path / "cache"))
  return env


def _run(binary, *args, tmp_path, timeout=240):
  return subprocess.run([sys.executable, "-m", f"tfmvae.bin.{binary}", *args], cwd=ROOT,
                        env=_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def _digest(path):
  h = hashlib.sha256()
  for p in sorted(pathlib.Path(path).rglob("*")):
    if p.is_file():
      h.update(str(p).encode() + p.read_bytes())
  return h.hexdigest()


def _step(model_dir):
  reader = tf.train.load_checkpoint(str(model_dir))
  return (int(reader.get_tensor("model/train_steps/.ATTRIBUTES/VARIABLE_VALUE")),
          int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")))


def _error_line(result):
  lines = [l for l in result.stderr.splitlines() if "error:" in l]
  assert result.returncode == 2, result.stderr[-2000:]
  assert len(lines) == 1, result.stderr[-2000:]
  return lines[0]


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("bin")
  model_dir = tmp / "smoke"
  result = _run("train", SMOKE, f"--model_dir={model_dir}", tmp_path=tmp)
  assert result.returncode == 0, result.stderr[-3000:]
  return tmp, model_dir


def test_train_eval_sample_on_smoke_flags(smoke_dir):
  tmp, model_dir = smoke_dir
  assert _step(model_dir) == (6, 6)
  assert (model_dir / "config.json").is_file()
  assert list((model_dir / "train").glob("events.out.tfevents.*"))
  out = tmp / "metrics.json"
  result = _run("eval", SMOKE, f"--model_dir={model_dir}", f"--output={out}", tmp_path=tmp)
  assert result.returncode == 0, result.stderr[-3000:]
  import json  # pylint: disable=g-import-not-at-top
  metrics = json.loads(out.read_text())
  assert metrics["step"] == 6 and metrics["protocol"] == "mvae"
  assert metrics["log_p_image"] < 0
  assert 0 <= metrics["coherence"]["image_to_label_accuracy"] <= 1
  result = _run("sample", SMOKE, f"--model_dir={model_dir}", f"--output_dir={tmp / 's'}",
                tmp_path=tmp)
  assert result.returncode == 0, result.stderr[-3000:]
  for name in ("prior_samples", "cross_modal", "reconstruction"):
    assert (tmp / "s" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_sigterm_saves_and_rerun_resumes(smoke_dir):
  tmp, model_dir = smoke_dir
  args = [sys.executable, "-m", "tfmvae.bin.train", SMOKE, f"--model_dir={model_dir}",
          "--steps=100000", "--checkpoint_every=4", "--image_every=0"]
  state = model_dir / "checkpoint"
  before = state.stat().st_mtime_ns
  proc = subprocess.Popen(args, cwd=ROOT, env=_env(tmp), stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 180
  while state.stat().st_mtime_ns == before and time.time() < deadline:  # First new ckpt.
    assert proc.poll() is None
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
  assert "Interrupted by SIGTERM" in stderr
  step, iterations = _step(model_dir)
  assert step > 6 and iterations == step  # Saved at the signal, past the last ckpt.
  result = _run("train", SMOKE, f"--model_dir={model_dir}", f"--steps={step + 2}",
                tmp_path=tmp)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _step(model_dir) == (step + 2, step + 2)
  assert f"to step {step + 2}" in result.stdout


def test_unknown_flag_is_one_line_exit_2(tmp_path):
  result = _run("train", SMOKE, "--model_dir=x", "--no_such_flag=1", tmp_path=tmp_path)
  assert "no_such_flag" in _error_line(result)
  assert not (ROOT / "x").exists()


def test_bad_inputs_exit_2_and_write_nothing(smoke_dir, tmp_path):
  """In one process per case would cost a TF import each; run them in-process."""
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from tfmvae.bin import eval as eval_bin  # pylint: disable=g-import-not-at-top
  from tfmvae.bin import train  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  _, model_dir = smoke_dir
  before = _digest(model_dir)

  def call(module, *args):
    with flagsaver.flagsaver():
      flags.FLAGS.unparse_flags()
      flags.FLAGS(["prog", *args])
      with pytest.raises(SystemExit) as e:
        module.main(["prog"])
    return e.value.code

  cases = [
      # Contradictory: MNIST images are 28x28.
      (train, (SMOKE, "--dataset=mnist_pairs", f"--model_dir={tmp_path / 'a'}"), "28x28"),
      # An image size the frame networks cannot take.
      (train, (SMOKE, "--model=svg_lp", "--dataset=moving_shapes", "--image_size=40",
               "--kl_warmup_steps=0", f"--model_dir={tmp_path / 'b'}"), "image_size=40"),
      # A missing data directory.
      (train, (SMOKE, f"--data_dir={tmp_path / 'nope'}", f"--model_dir={tmp_path / 'c'}"),
       "does not exist"),
      # The model_dir holds a different model.
      (train, (SMOKE, "--latent_dim=9", f"--model_dir={model_dir}"), "different model"),
      (eval_bin, (SMOKE, "--latent_dim=9", f"--model_dir={model_dir}"), "different model"),
      (eval_bin, (f"--model_dir={tmp_path}",), "no config.json"),
  ]
  for module, args, words in cases:
    import contextlib, io  # pylint: disable=g-import-not-at-top,multiple-imports
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
      code = call(module, *args)
    lines = [l for l in err.getvalue().splitlines() if "error:" in l]
    assert code == 2, (args, err.getvalue())
    assert len(lines) == 1 and words in lines[0], (words, err.getvalue())
  assert _digest(model_dir) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == []
