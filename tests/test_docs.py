"""docs/sharp_edges.md: every edge is complete, and everything it names exists."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

import fl_dp_lab.exercises

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "sharp_edges.md"
FIELDS = ("**Symptom:**", "**Why it voids the claim:**", "**Shown in:**", "**Caught by:**")
#: Notebooks this page's edges are taught in that already link back to it.
LINKING_NOTEBOOKS = ("04", "05b", "06", "07", "09", "10", "11")


def _text() -> str:
    return PAGE.read_text(encoding="utf-8")


def _edges() -> dict[str, str]:
    parts = re.split(r"^### ", _text().split("\n## References")[0], flags=re.M)[1:]
    return {part.splitlines()[0]: part for part in parts}


def test_every_edge_has_symptom_why_notebook_and_check_one_line_each():
    edges = _edges()
    assert len(edges) >= 11
    for title, body in edges.items():
        lines = [line for line in body.splitlines()[1:] if line.strip()]
        for field in FIELDS:
            found = [line for line in lines if line.startswith(f"- {field}")]
            assert len(found) == 1, f"edge {title!r} needs exactly one {field} line"
        shown = next(line for line in lines if "**Shown in:**" in line)
        assert "../notebooks/" in shown, f"edge {title!r} names no notebook"


def test_every_notebook_linked_exists():
    links = re.findall(r"\]\(\.\./(notebooks/[^)]+\.ipynb)\)", _text())
    assert links
    for link in set(links):
        assert (ROOT / link).is_file(), link


def test_every_test_named_exists():
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", _text())
    assert len(named) >= 8
    for path, name in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, flags=re.M), f"{path}::{name} not found"


def test_every_exercise_check_named_exists():
    named = set(re.findall(r"`(check_\w+)`", _text()))
    assert {"check_clip_function", "check_clip_factors"} <= named
    for name in named:
        assert name in fl_dp_lab.exercises.__all__, name


def test_every_package_name_resolves():
    for dotted in set(re.findall(r"`(fl_dp_lab(?:\.\w+)+)`", _text())):
        module, _, attribute = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attribute), dotted


def test_every_other_doc_named_exists():
    for path in set(re.findall(r"`(docs/[\w.]+\.md)`", _text())):
        assert (ROOT / path).is_file(), path


def test_readme_and_the_teaching_notebooks_link_the_page():
    assert "(docs/sharp_edges.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    for number in LINKING_NOTEBOOKS:
        (path,) = ROOT.glob(f"notebooks/{number}_*.ipynb")
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        assert "(../docs/sharp_edges.md)" in text, path.name


@pytest.mark.parametrize("path", sorted(ROOT.glob("notebooks/*.ipynb")), ids=lambda p: p.name)
def test_a_notebook_that_links_the_page_links_it_right(path):
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)]*sharp_edges\.md)\)", text):
        assert target == "../docs/sharp_edges.md", (path.name, target)
