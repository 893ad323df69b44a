"""The package map in fl_dp_lab's docstring and __all__ names every public module."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import fl_dp_lab

PUBLIC = sorted(
    m.name for m in pkgutil.iter_modules(fl_dp_lab.__path__) if not m.name.startswith("_")
)


def test_all_lists_every_public_module_and_the_docstring_maps_each():
    assert sorted(fl_dp_lab.__all__) == PUBLIC
    for name in PUBLIC:
        assert f"``{name}``" in fl_dp_lab.__doc__, f"{name} is missing from the package map"


@pytest.mark.parametrize("name", PUBLIC)
def test_each_module_imports(name):
    module = importlib.import_module(f"fl_dp_lab.{name}")
    assert module.__doc__, f"fl_dp_lab.{name} has no docstring"


def test_importing_the_package_pulls_in_neither_torch_nor_flower():
    code = "import sys, fl_dp_lab; print('torch' in sys.modules, 'flwr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
