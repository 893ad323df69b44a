"""Notation lint: the notebooks' prose follows docs/notation.md.

Only markdown cells are read, with code spans and fenced code removed, so Python names and
library APIs (Opacus's ``grad_sample``, ``clip_per_sample``) never count. Each rule is a
symbol used for something docs/notation.md gives another meaning:

- ``sigmoid-as-sigma``: σ applied like a function, ``σ(z)`` or ``\\sigma(z)``. σ is the
  noise multiplier, a number; the logistic function is written "sigmoid".
- ``query-as-q``: q named as a query or applied to a dataset, ``query q``, ``q(D)``. q is
  the sampling rate; a query is f.
- ``per-sample``: "per-sample" in prose; the course says "per-example".
- ``sensitivity-as-s``: "sensitivity s"; the sensitivity is Δ.
- ``error-constant-C``: C as the constant of an error model, ``≈ C·hᵖ``, ``log C``. C is the
  clip norm.
- ``bare-machine-epsilon``: in notebook 01, where every ε is machine epsilon, ε without
  ``_mach`` (ε alone is the privacy budget); elsewhere "machine epsilon ε" without ``_mach``.
- ``privacy-loss-as-L``: the privacy-loss random variable written L (``L ~ N(``, ``privacy
  loss L``, ``L(x) = log``, ``P[L >``, ``e^(ε − L)``). L is the training loss; the privacy
  loss is L_priv.
- ``update-as-Delta``: a client update written Δ_k, Δₖ or Δ̄. Δ is the sensitivity; the
  update of client k is u_k (their mean ū).
- ``heading-period``: a numbered section heading ``## 1. Title``; the course writes
  ``## 1 · Title``, with the middle dot of the notebooks' titles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGE = ROOT / "docs" / "notation.md"

RULES: dict[str, re.Pattern[str]] = {
    "sigmoid-as-sigma": re.compile(r"σ\(|\\sigma\("),
    "query-as-q": re.compile(r"\bquer(?:y|ies)\s+q\b|\bq\s*\(\s*D\b"),
    "per-sample": re.compile(r"\bper[- ]sample\b", re.IGNORECASE),
    "sensitivity-as-s": re.compile(r"\bsensitivity\s+s\b"),
    "error-constant-C": re.compile(r"≈\s*C\s*·\s*h|\blog\s+C\b"),
    "bare-machine-epsilon": re.compile(r"machine epsilon,?\s+ε(?!_mach)"),
    "privacy-loss-as-L": re.compile(
        r"\bL\s*~\s*N\(|privacy loss(?:es)?\s+L\b(?!_)|\bL\(x\)\s*=\s*log|P\[L\s*>|ε\s*[−-]\s*L\b(?!_)"
    ),
    "update-as-Delta": re.compile(r"Δ_k|Δₖ|Δ̄"),
    "heading-period": re.compile(r"^#{2,4} \d+[a-z]?\. "),
}
#: Notebooks in which every ε is machine epsilon, so a bare ε is always a slip there.
MACHINE_EPSILON_ONLY = {"01_central_differences"}
BARE_EPSILON = re.compile(r"ε(?!_mach)|\\varepsilon(?!_)")

#: Legitimate uses: a term quoted as a library spells it ("per-sample" in double quotes).
ALLOWED: dict[str, tuple[re.Pattern[str], ...]] = {
    "per-sample": (re.compile(r"\"[^\"\n]*per[- ]sample[^\"\n]*\"", re.IGNORECASE),),
}
#: Cells owned by another piece of work when the renames were made; rename and remove.
PENDING: dict[tuple[str, str], set[str]] = {}


def _prose(source: str) -> str:
    """Markdown without fenced code blocks and inline code spans."""
    source = re.sub(r"```.*?```", " ", source, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", " ", source)


def violations(text: str, notebook: str = "") -> list[tuple[str, str]]:
    """(rule, offending line) for every forbidden use in a markdown text."""
    found = []
    for line in _prose(text).splitlines():
        for rule, pattern in RULES.items():
            cleaned = line
            for allowed in ALLOWED.get(rule, ()):
                cleaned = allowed.sub(" ", cleaned)
            if pattern.search(cleaned):
                found.append((rule, line.strip()))
        if notebook in MACHINE_EPSILON_ONLY and BARE_EPSILON.search(line):
            found.append(("bare-machine-epsilon", line.strip()))
    return found


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_follows_the_notation(path):
    stem = path.stem
    bad = []
    for cell in _cells(path):
        if cell["cell_type"] != "markdown":
            continue
        skipped = PENDING.get((stem, cell.get("id", "")), set())
        for rule, line in violations("".join(cell["source"]), stem):
            if rule not in skipped:
                bad.append(f"[{rule}] cell {cell.get('id')}: {line[:120]}")
    assert not bad, f"{path.name} breaks docs/notation.md:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("text", "notebook", "rule"),
    [
        ("the probability is σ(z) = 1 / (1 + e⁻ᶻ)", "", "sigmoid-as-sigma"),
        ("$$\\frac{1}{n} \\sum_i (\\sigma(z_i) - t_i)$$", "", "sigmoid-as-sigma"),
        ("DP asks the same of a query q, with one record", "", "query-as-q"),
        ("the largest |q(D) − q(D′)| over neighbours", "", "query-as-q"),
        ("compute Per-sample gradients three ways", "", "per-sample"),
        ("clip every per sample gradient", "", "per-sample"),
        ("For the Gaussian mechanism with sensitivity s it is", "", "sensitivity-as-s"),
        ("If error ≈ C·hᵖ then a line", "", "error-constant-C"),
        ("about machine epsilon ε = 2.2e-16", "", "bare-machine-epsilon"),
        ("h ≈ ε^(1/2) for forward differences", "01_central_differences", "bare-machine-epsilon"),
        ("$$\\tfrac{\\varepsilon |f|}{h}$$", "01_central_differences", "bare-machine-epsilon"),
        ("so L ~ N(μ, 2μ) with μ = Δ² / 2s²", "", "privacy-loss-as-L"),
        ("their privacy losses L = log P(x)/Q(x)", "", "privacy-loss-as-L"),
        ("δ(ε) = E[(1 − e^(ε − L))₊]", "", "privacy-loss-as-L"),
        ("sends back its **update** Δ_k = θ_k − θ", "", "update-as-Delta"),
        ("spread = mean_k ‖u_k − Δ̄‖", "", "update-as-Delta"),
        ("## 3. Poisson client sampling", "", "heading-period"),
    ],
)
def test_each_rule_catches_its_slip(text, notebook, rule):
    assert rule in {found for found, _ in violations(text, notebook)}


@pytest.mark.parametrize(
    "text",
    [
        "the probability is sigmoid(z); σ = 1.1 and noise of standard deviation σC",
        "sample with rate q = 0.01: (log(1 + q(e^ε − 1)), qδ)-DP; a query f(D)",
        "per-example gradients; Opacus stores them in `grad_sample` and `clip_per_sample`",
        'Opacus\'s docs call them "per-sample gradients"',
        "one seed per sampled client",
        "clip to norm C; error ≈ A·hᵖ, log A; the sensitivity Δ; sensitivity sets the scale",
        "machine epsilon ε_mach = 2.2e-16; the budget ε = 8 at δ = 1e-5",
        "the training loss L(θ) = (1/N) Σᵢ ℓᵢ; the privacy loss L_priv ~ N(μ, 2μ), P[L_priv > ε]",
        "clip each update u_k to C; the mean ū; the sensitivity Δ = C",
        "## 3 · Poisson client sampling; step 1. of the protocol",
    ],
)
def test_legitimate_uses_pass(text):
    assert violations(text) == []


def test_every_notebook_links_the_notation_page_before_it_starts():
    assert PAGE.is_file()
    for path in NOTEBOOKS:
        before = [
            "".join(c["source"])
            for c in _cells(path)
            if c["cell_type"] == "markdown" and "Before this" in "".join(c["source"])
        ]
        assert before, f"{path.name} has no Before this cell"
        assert "](../docs/notation.md)" in before[0], f"{path.name}: link docs/notation.md"


def test_notation_page_gives_each_symbol_one_row():
    rows = re.findall(r"^\| ([^|]+?) \|", PAGE.read_text(encoding="utf-8"), flags=re.M)
    symbols = [row for row in rows if row not in {"Symbol", "---"}]
    assert len(symbols) >= 20
    assert len(symbols) == len(set(symbols)), "a symbol has two rows"
    for needed in ("σ", "q", "f", "Δ", "C", "α", "ε", "ε_mach", "K", "m", "N", "n_k", "u_k"):
        assert any(needed in row.split(", ") or row == needed for row in symbols), needed
