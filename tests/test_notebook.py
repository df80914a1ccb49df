"""notebooks/quickstart.ipynb: committed without outputs, and runs top to bottom with the smoke
preset (tiny random model; the normal dataset/pool cache is reused, everything the notebook
writes goes to a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def _read():
    return nbformat.read(NOTEBOOK, as_version=4)


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "expected exactly one code cell tagged 'parameters'"
    assert cells[0].cell_type == "code"
    return cells[0]


def test_notebook_is_committed_without_outputs():
    nb = _read()
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count"
    names = {line.split("=")[0].strip() for line in _parameters_cell(nb).source.splitlines()
             if "=" in line and not line.startswith("#")}
    assert {"PRESET", "TRAINED_RUN", "OUT_DIR", "USER", "N_EVAL_USERS"} <= names


def test_notebook_runs_with_the_smoke_preset(tmp_path):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = _read()
    _parameters_cell(nb).source = "\n".join([
        "# injected by tests/test_notebook.py",
        'PRESET = "smoke"',
        f'TRAINED_RUN = "{tmp_path / "run"}"',
        f'OUT_DIR = "{tmp_path / "out"}"',
        'USER = "196"',
        'NEW_HISTORY = ["50", "172", "181"]',
        "N_EVAL_USERS = 16",
    ])
    # kernel "python3" with argv "python" runs this interpreter (jupyter_client swaps in sys.executable)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    error = None
    try:
        client.execute()
    except CellExecutionError as err:  # the failing cell's source and traceback, without colours
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    if error:
        pytest.fail(f"notebook cell failed:\n{error}", pytrace=False)

    # every step produced what the notebook promises
    assert (tmp_path / "run" / "final" / "recgen.json").is_file()
    assert (tmp_path / "out" / "eval" / "table.md").is_file()
    assert (tmp_path / "out" / "report" / "report.html").is_file()
    text = "\n".join(
        o.get("text", "") + "".join(str(v) for v in o.get("data", {}).values())
        for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for expected in ("Star Wars", "zero-shot ranking", "trained slate", "★", "fgrpo"):
        assert expected in text, f"{expected!r} not in the notebook's outputs"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the report figure was not displayed"
