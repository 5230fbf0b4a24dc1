"""Runs notebooks/quickstart.ipynb's code cells top to bottom with a tiny config.

How: cells tagged "install" (pip installs; the package is already installed here)
are left out; every other code cell runs, in order, in one namespace, with
TFMVAE_NOTEBOOK_TEST=1 (the notebook then shrinks its config) and
TFMVAE_NOTEBOOK_DIR pointing at a temporary folder. No absl flag parsing happens.
Lines starting with "!" or "%" (shell / magics) are not allowed outside install
cells. The .ipynb is read as JSON (no nbformat / Jupyter needed).
"""
import json
import pathlib

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
  cells = json.loads(NOTEBOOK.read_text())["cells"]
  code = [c for c in cells if c["cell_type"] == "code"]
  install = [c for c in code if "install" in c.get("metadata", {}).get("tags", [])]
  assert len(install) == 1  # Only the pip cell is left out.
  monkeypatch.setenv("TFMVAE_NOTEBOOK_TEST", "1")
  monkeypatch.setenv("TFMVAE_NOTEBOOK_DIR", str(tmp_path))
  namespace = {"__name__": "__notebook__"}
  ran = 0
  for cell in code:
    if cell in install:
      continue
    source = "".join(cell["source"])
    assert not any(l.lstrip().startswith(("!", "%")) for l in source.splitlines()), source
    exec(compile(source, f"{NOTEBOOK.name}:{cell['id']}", "exec"), namespace)  # pylint: disable=exec-used
    ran += 1
  assert ran == len(code) - 1
  assert list((tmp_path / "exported" / "quickstart").iterdir())
  assert (tmp_path / "samples" / "predictions.gif").is_file()
  assert "summary" in namespace["metrics"]
