"""Shared test settings: deterministic, quiet, headless."""

from __future__ import annotations

import matplotlib

# Only this test process draws off-screen. MPLBACKEND is deliberately left unset in
# the environment: nbval's kernels and the browser test's JupyterLab inherit it, and
# they must use the inline backend a learner sees.
matplotlib.use("Agg")
