"""Execute every notebook in notebooks/ top to bottom (nbclient, the project's own Python).

Parametrised over the files, so new notebooks are picked up automatically. The kernel is a
kernelspec installed at test time into a temporary prefix for *this* interpreter
(``python -m ipykernel install --prefix``), so the notebooks never run on another Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL = "mpc-bio-test"


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """A kernelspec for this interpreter in a temporary prefix, visible through JUPYTER_PATH."""
    prefix = tmp_path_factory.mktemp("kernel")
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", KERNEL, "--display-name", KERNEL],
        check=True,
        capture_output=True,
    )
    share = prefix / "share" / "jupyter"
    assert (share / "kernels" / KERNEL / "kernel.json").is_file()
    return str(share)


def test_notebooks_found():
    names = [p.name for p in NOTEBOOKS]
    assert "01_surrogate.ipynb" in names and "02_fedbatch.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: store notebooks without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_env, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", kernel_env + os.pathsep + os.environ.get("JUPYTER_PATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))  # which Python ran it
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=None, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    # the kernel really was this interpreter's environment, and every code cell ran
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert code[-1].outputs[0]["text"].strip() == sys.prefix
