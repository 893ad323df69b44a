"""Execute the course's notebooks, render them to HTML, and report time and memory.

    python scripts/run_notebooks.py                     # all notebooks -> build/html/
    python scripts/run_notebooks.py notebooks/05b_*.ipynb --out build/html

Each notebook runs in its own fresh kernel (``jupyter nbconvert --execute``, through
``nbconvert_sliced.py``, which keeps a lost ZeroMQ wake-up from stalling a cell), with
widget state stored, so the HTML shows sliders as they were left. While it runs,
the peak resident memory of the kernel and everything it starts (Ray workers in
notebook 11) is sampled every 0.1 s; nbconvert's own process is not counted. The
sum of RSS overcounts shared pages, so it is an upper bound. The table printed at the
end is what README's course map quotes. ``build/html/index.html`` links every page.
"""

from __future__ import annotations

import argparse
import html
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def run(notebook: Path, out: Path, timeout: int) -> tuple[float, float, int]:
    """Execute ``notebook`` to HTML in ``out``; return (seconds, peak MiB, exit code)."""
    command = [
        sys.executable, str(ROOT / "scripts" / "nbconvert_sliced.py"), "--to", "html", "--execute",
        f"--ExecutePreprocessor.timeout={timeout}", "--ExecutePreprocessor.store_widget_state=True",
        "--output-dir", str(out), str(notebook),
    ]  # fmt: skip
    start = time.perf_counter()
    process = psutil.Popen(command, cwd=notebook.parent, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)  # fmt: skip
    peak = 0
    while process.poll() is None:
        try:
            tree = process.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if process.returncode:
        sys.stderr.write(process.stderr.read().decode(errors="replace")[-4000:])
    return seconds, peak / 2**20, process.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "html")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    print(f"{'notebook':<40} {'seconds':>8} {'kernel MiB':>10}")
    for notebook in notebooks:
        seconds, peak, code = run(notebook.resolve(), args.out.resolve(), args.timeout)
        failed += code != 0
        status = "" if code == 0 else "  FAILED"
        print(f"{notebook.name:<40} {seconds:8.1f} {peak:10.0f}{status}", flush=True)
        rows.append((notebook.stem, seconds, peak, code))
    items = "\n".join(
        f'<li><a href="{html.escape(stem)}.html">{html.escape(stem)}</a> '
        f"({seconds:.0f} s{', FAILED' if code else ''})</li>"
        for stem, seconds, _, code in rows
    )
    (args.out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>fl-dp-lab</title>"
        f"<h1>fl-dp-lab: the executed course</h1><ol start='0'>{items}</ol>\n"
    )
    print(f"HTML in {args.out}/index.html")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
