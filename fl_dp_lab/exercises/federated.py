"""Exercises of notebooks 08-09."""

from __future__ import annotations

__all__: list[str] = []
