"""Every committed notebook is clean (no outputs) and follows the lesson skeleton.

nbval executes the notebooks themselves (see the Makefile); this file checks what
the committed JSON must look like: AUTHORING.md's skeleton and exercise pattern.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted(
    (Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]*_*.ipynb")
)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def test_the_course_has_its_numbered_notebooks():
    # 00, 00a, 00b, 01, ...: every number once, a lettered part (00a) after its number
    prefixes = [p.name.split("_")[0] for p in NOTEBOOKS]
    assert all(re.fullmatch(r"\d\d[a-z]?", prefix) for prefix in prefixes), prefixes
    numbers = sorted({int(prefix[:2]) for prefix in prefixes})
    assert numbers == list(range(len(numbers))) and len(numbers) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = _load(path)
    dirty = [
        i
        for i, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; run `make strip`"
    assert "widgets" not in notebook.get("metadata", {}), f"{path.name}: saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_lesson_skeleton(path):
    cells = _load(path)["cells"]
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    number = path.name.split("_")[0]  # "04", or "00a" for a lettered part
    assert _source(cells[0]).startswith(f"# {number} · "), "first cell must be the title"
    for heading in ("You will learn", "Before this", "Recap", "References"):
        assert heading in markdown, f"{path.name} has no '{heading}'"
    assert re.search(r"SEED\s*=\s*\d+", "\n".join(_source(c) for c in cells)), "no SEED cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_checked_exercises_with_hidden_solutions(path):
    cells = _load(path)["cells"]
    exercises = [c for c in cells if c["cell_type"] == "markdown" and "### Exercise" in _source(c)]
    assert len(exercises) >= 2, f"{path.name} has {len(exercises)} exercises, needs >= 2"
    answers = [
        c
        for c in cells
        if c["cell_type"] == "code" and "= ..." in _source(c) and "check_" in _source(c)
    ]
    solutions = [
        c
        for c in cells
        if c["cell_type"] == "code"
        and c.get("metadata", {}).get("jupyter", {}).get("source_hidden")
    ]
    assert len(answers) >= len(exercises), (
        "every exercise needs an answer cell with ... and a check_"
    )
    assert len(solutions) >= len(exercises), "every exercise needs a collapsed solution cell"
    for cell in solutions:
        assert "solution" in cell["metadata"].get("tags", [])
        assert re.search(r"assert check_\w+\(", _source(cell)), "a solution must assert its check"


#: AUTHORING.md: code cells stay short. The first code cell (imports and settings) may be
#: longer; every other code cell, solutions included, is at most this many non-blank lines.
MAX_CELL_LINES = 20


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_stay_short(path):
    code = [c for c in _load(path)["cells"] if c["cell_type"] == "code"]
    long = {
        cell.get("id"): n
        for cell in code[1:]
        if (n := sum(1 for line in _source(cell).splitlines() if line.strip())) > MAX_CELL_LINES
    }
    assert not long, (
        f"{path.name}: code cells over {MAX_CELL_LINES} non-blank lines {long}: split them "
        "with a sentence between, or move plotting into fl_dp_lab.plots"
    )
