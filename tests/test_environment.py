"""environment.yml (Binder, conda) and pyproject.toml (pip) describe the same course.

Both must name the same packages, and the versions pinned in constraints.txt (the
ones the course is tested with) must satisfy both files' version ranges, so the
conda route and the pip route cannot drift apart silently.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch": "torch"}
# what the notebooks need from the pip extras: nbval runs them, 05 and 11 import these
EXTRAS_IN_ENVIRONMENT = {"nbval", "dp-accounting", "flwr"}


def _pyproject() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    specs = {}
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in specs and not requirement.specifier:
            continue
        specs[name] = requirement.specifier
    return specs


def _environment() -> dict[str, SpecifierSet]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"][0] == "conda-forge"
    specs = {}
    for item in environment["dependencies"]:
        entries = item["pip"] if isinstance(item, dict) else [item]
        for entry in entries:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*=?(.*)", entry.strip())
            name = canonicalize_name(CONDA_TO_PYPI.get(match.group(1), match.group(1)))
            spec = match.group(3).replace(" ", "")
            if name not in {"python", "pip"}:
                specs[name] = SpecifierSet(spec)
    return specs


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_environment_and_pyproject_name_the_same_packages():
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = {canonicalize_name(Requirement(r).name) for r in runtime} | EXTRAS_IN_ENVIRONMENT
    assert set(_environment()) == expected


@pytest.mark.parametrize("name", sorted(_environment()))
def test_pinned_version_satisfies_both_files(name):
    pinned = _pinned()[name]
    assert pinned in _environment()[name], f"environment.yml excludes the tested {name}=={pinned}"
    assert pinned in _pyproject()[name], f"pyproject.toml excludes the tested {name}=={pinned}"


def test_environment_python_is_allowed_by_pyproject():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in environment["dependencies"] if str(d).startswith("python="))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python.split("=")[1] in SpecifierSet(requires)


def test_binder_post_build_installs_the_package_without_dependencies():
    text = (ROOT / "postBuild").read_text()
    assert "set -e" in text and "pip install --no-deps -e ." in text
