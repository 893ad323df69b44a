"""The course map says the same thing everywhere: notebooks, minutes and their count.

Each notebook states its own length in its header ("About N minutes"); README's course
table and notebook 00's map repeat it. The header is the one source: both tables must
list every numbered notebook once, with the header's minutes, and notebook 00's count of
notebooks must be the number in ``notebooks/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
ROW = re.compile(r"^\| (\d\d[a-z]?) \|.*\| (\d+) \|$", re.M)
NUMBER_WORDS = {
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "twelve": 12, "thirteen": 13, "fourteen": 14,
}  # fmt: skip


def _number(path: Path) -> str:
    return path.name.split("_")[0]


def _cells(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]


def _header_minutes(path: Path) -> int:
    """The "About N minutes" of the notebook's first cells (title and "Before this")."""
    found = re.findall(r"About (\d+) minutes", "\n".join(_cells(path)[:4]))
    assert len(found) == 1, f"{path.name}: its header must say 'About N minutes' once"
    return int(found[0])


def _table(text: str) -> dict[str, int]:
    rows = ROW.findall(text)
    numbers = [number for number, _ in rows]
    assert len(numbers) == len(set(numbers)), f"a notebook is listed twice: {numbers}"
    return {number: int(minutes) for number, minutes in rows}


def _map_cell() -> str:
    return next(c for c in _cells(ROOT / "notebooks" / "00_start_here.ipynb") if "| minutes |" in c)


@pytest.mark.parametrize(
    "name, text",
    [
        ("README.md", lambda: (ROOT / "README.md").read_text(encoding="utf-8")),
        ("notebook 00's map", _map_cell),
    ],
)
def test_each_table_lists_every_notebook_with_its_headers_minutes(name, text):
    table = _table(text())
    headers = {_number(p): _header_minutes(p) for p in NOTEBOOKS}
    assert set(table) == set(headers), (
        f"{name} lists {sorted(table)}, notebooks/ has {sorted(headers)}"
    )
    wrong = {k: (table[k], headers[k]) for k in headers if table[k] != headers[k]}
    assert not wrong, f"{name}: (table, header) minutes differ for {wrong}"


def test_notebook_00_counts_the_notebooks_there_are():
    text = "\n".join(_cells(ROOT / "notebooks" / "00_start_here.ipynb")).lower()
    counts = [
        NUMBER_WORDS[w] for w in re.findall(r"\b(\w+) notebooks\b", text) if w in NUMBER_WORDS
    ]
    assert counts, "notebook 00 should say how many notebooks the course has"
    assert set(counts) == {len(NOTEBOOKS)}, (counts, len(NOTEBOOKS))


def test_the_table_reader_catches_a_mismatch():
    row = "| 06 | [DP-SGD](notebooks/06.ipynb) | clip | 50 |"
    assert _table(row) == {"06": 50}
    with pytest.raises(AssertionError, match="listed twice"):
        _table(f"{row}\n{row}")
