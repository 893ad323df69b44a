"""The package's boundaries, read from the source (no module is imported).

The rules, and why:

1. **No module imports another module's private name.** A name is private when
   it, or any module on its dotted path below ``fl_dp_lab``, starts with ``_``
   (``_clip_factors``, ``fl_dp_lab.accounting._pld``). A topic is one
   subpackage (``fl_dp_lab/accounting/``) or one top-level module
   (``fl_dp_lab/training.py``); inside its own topic a module may use private
   names freely (``accounting/__init__`` imports ``_pld``), since they change
   together. Across topics, only the public names of the façade are used
   (``from fl_dp_lab.dpsgd import clip_limit``), so a topic can rearrange its
   private parts without breaking another. Two private modules are shared
   infrastructure that every module may import: ``fl_dp_lab._validate`` (the one
   argument-check message) and ``fl_dp_lab._types`` (``LossFn``, the History
   family).
2. **The library does not depend on its presentation.** Core modules (everything
   but ``plots``, ``widgets`` and ``exercises``) import none of those three;
   ``plots`` imports no ``widgets`` or ``exercises``; ``widgets`` imports no
   ``exercises``. Figures are built from the math, dashboards from figures.

Imports inside functions count too: they are how a module defers a heavy
dependency, not a way around the rules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fl_dp_lab"
SHARED = {"fl_dp_lab._validate", "fl_dp_lab._types"}
PRESENTATION = ("plots", "widgets", "exercises")
#: What each presentation layer may not import (the core may import none of them).
FORBIDDEN = {"plots": {"widgets", "exercises"}, "widgets": {"exercises"}, "exercises": set()}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _topic(module: str) -> str:
    """``fl_dp_lab.accounting._pld`` -> ``fl_dp_lab.accounting``: the subpackage or top module."""
    return ".".join(module.split(".")[:2])


def _imports(module: str) -> list[tuple[int, str]]:
    """Every ``fl_dp_lab`` name ``module`` imports, as (line, dotted name)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import, resolved against the importing package
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "fl_dp_lab"]


def _private_part(name: str) -> bool:
    return any(part.startswith("_") for part in name.split(".")[1:])


def _shared(name: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in SHARED)


def test_the_walk_finds_the_package_and_its_imports():
    # guards the two tests below against passing on an empty walk
    assert {"fl_dp_lab.accounting", "fl_dp_lab.accounting._pld", "fl_dp_lab._validate"} <= set(
        MODULES
    )
    assert (
        next(line for line, name in _imports("fl_dp_lab.accounting") if name.endswith("._pld")) > 0
    )


def test_the_rules_flag_what_they_should_and_nothing_else():
    # (importer, imported name) -> breaks rule 1?
    cases = {
        ("fl_dp_lab.plots.dpsgd", "fl_dp_lab.dpsgd._clip_factors"): True,
        ("fl_dp_lab.federated", "fl_dp_lab.dpsgd._per_sample.clip_limit"): True,
        ("fl_dp_lab.widgets.federated", "fl_dp_lab._simulation.FederatedHistory"): True,
        ("fl_dp_lab.plots.dpsgd", "fl_dp_lab.dpsgd.clip_factors"): False,
        ("fl_dp_lab.accounting", "fl_dp_lab.accounting._pld"): False,
        ("fl_dp_lab.accounting._composition", "fl_dp_lab.accounting._accounting_core.x"): False,
        ("fl_dp_lab.training", "fl_dp_lab._validate.fail"): False,
        ("fl_dp_lab.dpsgd", "fl_dp_lab._types.LossFn"): False,
    }
    for (importer, name), breaks in cases.items():
        assert _breaks_rule_one(importer, name) is breaks, (importer, name)


def _breaks_rule_one(importer: str, name: str) -> bool:
    return _private_part(name) and not _shared(name) and _topic(name) != _topic(importer)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_another_topics_private_name(module):
    bad = [
        f"line {line}: {name}"
        for line, name in _imports(module)
        if _breaks_rule_one(module, name)
    ]
    assert not bad, f"{module} imports private names of another topic: {bad}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_core_modules_import_no_plots_widgets_or_exercises(module):
    layer = module.split(".")[1] if module.count(".") else ""
    forbidden = FORBIDDEN.get(layer, set(PRESENTATION))
    bad = [
        f"line {line}: {name}"
        for line, name in _imports(module)
        if name.count(".") and name.split(".")[1] in forbidden
    ]
    assert not bad, f"{module} imports a layer above it: {bad}"


#: The most parameters a public function or method may take (``self`` not counted).
#: Past a dozen, arguments that travel together belong in a small frozen config object.
MAX_PARAMETERS = 12


def _public_functions(module: str) -> list[tuple[str, int, int]]:
    """(qualified name, line, parameter count) of every public function and method."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith("_") and node.name != "__init__":
                    continue
                args = node.args
                names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
                count = len([n for n in names if n not in ("self", "cls")])
                found.append((f"{prefix}{node.name}", node.lineno, count))

    visit(tree.body, "")
    return found


def test_the_parameter_count_sees_keyword_only_arguments_and_skips_self():
    source = "class A:\n    def f(self, a, *, b, c=1, **kw): ...\ndef _g(a, b): ...\n"
    tree = ast.parse(source)
    method = tree.body[0].body[0]
    args = method.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    assert [n for n in names if n != "self"] == ["a", "b", "c", "kw"]
    counts = {name: n for name, _, n in _public_functions("fl_dp_lab.accounting")}
    assert counts["epsilon"] == 5 and counts["PrivacyAccountant.__init__"] == 1


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_public_function_takes_more_than_twelve_parameters(module):
    bad = [
        f"{name} (line {line}): {count}"
        for name, line, count in _public_functions(module)
        if count > MAX_PARAMETERS
    ]
    assert not bad, f"{module}: more than {MAX_PARAMETERS} parameters: {bad}"
