"""Remove outputs and execution counts from notebooks (or, with --check, list those that have them).

    python scripts/strip_outputs.py notebooks          # strip in place
    python scripts/strip_outputs.py --check notebooks  # exit 1 if any notebook has outputs

Uses only the standard library, so it runs before any install.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def dirty_cells(notebook: dict) -> int:
    return sum(
        1
        for cell in notebook.get("cells", [])
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count"))
    )


def strip(notebook: dict) -> dict:
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    notebook.get("metadata", {}).pop("widgets", None)
    return notebook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only report, exit 1 if dirty")
    args = parser.parse_args()
    files = [
        p
        for path in args.paths
        for p in (sorted(path.glob("*.ipynb")) if path.is_dir() else [path])
    ]
    dirty = []
    for path in files:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        if dirty_cells(notebook) or "widgets" in notebook.get("metadata", {}):
            dirty.append(path)
            if not args.check:
                text = json.dumps(strip(notebook), indent=1, ensure_ascii=False) + "\n"
                path.write_text(text, encoding="utf-8")
    verb = "has outputs" if args.check else "stripped"
    for path in dirty:
        print(f"{path}: {verb}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
