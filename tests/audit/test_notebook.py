"""examples/notebook.ipynb runs top to bottom on the project's Python, and is stored stripped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
KERNEL = "biasaudit-test-venv"


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.slow
def test_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a kernel spec of its own pointing at this interpreter (the venv's python), so a
    # python3 kernel installed elsewhere on the machine is never picked by mistake
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "biasaudit venv", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend draws the plot
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # the inline summary: verdict, findings table and the selection-rate chart
    assert any("verdict" in h and "<svg" in h and "impact_ratio" in h for h in html)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "v1: fail  v2:" in printed
    # the diff of the two versions shows the flip test becoming not_applicable
    assert any("not_applicable" in h for h in html)
