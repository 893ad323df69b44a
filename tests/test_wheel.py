"""The built wheel ships every module of fl_dp_lab and its py.typed marker.

An editable install (``pip install -e``, what ``make setup`` does) imports from the
source tree and so hides a subpackage the build configuration forgot; a wheel
built from a copy of the project does not. The copy keeps the build's ``build/``
and ``*.egg-info`` directories out of the working tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fl_dp_lab"


def _modules() -> set[str]:
    """Every ``.py`` file and ``py.typed`` under fl_dp_lab, as a path inside the wheel."""
    files = [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("py.typed")]
    return {p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts}


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_py_typed(tmp_path):
    # Prepare: the project's build inputs, copied without caches
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PACKAGE, source / "fl_dp_lab", ignore=ignore)
    # Execute: build the wheel with the installed setuptools (no network)
    out = tmp_path / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--disable-pip-version-check", "--quiet", "-w", str(out), str(source)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    # Assert: one wheel, holding every module and the marker, and nothing from outside
    (wheel,) = out.glob("fl_dp_lab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("fl_dp_lab/")}
    expected = _modules()
    assert "fl_dp_lab/py.typed" in expected and "fl_dp_lab/accounting/_pld.py" in expected
    assert expected - shipped == set(), "modules missing from the wheel"
    assert shipped - expected == set(), "the wheel ships files that are not modules"
