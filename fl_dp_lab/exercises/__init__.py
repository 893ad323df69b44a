"""``check_*`` functions that give learners instant feedback on exercises.

Every check prints ✓ (right), ✗ (not yet, with a hint) or … (unanswered)
and returns ``True`` only for a right answer; it never raises on a wrong
answer, only on a malformed one. See ``notebooks/AUTHORING.md`` for the
exercise pattern (the answer cell, the check, the hidden solution).

One submodule per topic, each listing its checks in ``__all__``: ``numdiff``
(01), ``training`` (02), ``attacks`` (03), ``mechanisms`` (04), ``accounting``
(05a, 05b), ``dpsgd`` (06-07), ``federated`` (08-09), ``populations`` (09b),
``auditing`` (10), ``flower`` (11), ``trust`` (12), ``start`` (00) and
``primer`` (the primers 00a and 00b). All of them are re-exported here, so
notebooks write ``from fl_dp_lab.exercises import check_numerical_gradient``.
Wrong tries are counted per exercise; ``reset_tries()`` starts again.
"""

from __future__ import annotations

from fl_dp_lab.exercises._core import feedback, is_unanswered, reset_tries
from fl_dp_lab.exercises.accounting import *  # noqa: F403
from fl_dp_lab.exercises.attacks import *  # noqa: F403
from fl_dp_lab.exercises.auditing import *  # noqa: F403
from fl_dp_lab.exercises.dpsgd import *  # noqa: F403
from fl_dp_lab.exercises.federated import *  # noqa: F403
from fl_dp_lab.exercises.flower import *  # noqa: F403
from fl_dp_lab.exercises.mechanisms import *  # noqa: F403
from fl_dp_lab.exercises.numdiff import *  # noqa: F403
from fl_dp_lab.exercises.populations import *  # noqa: F403
from fl_dp_lab.exercises.primer import *  # noqa: F403
from fl_dp_lab.exercises.start import *  # noqa: F403
from fl_dp_lab.exercises.training import *  # noqa: F403
from fl_dp_lab.exercises.trust import *  # noqa: F403

__all__ = ["feedback", "is_unanswered", "reset_tries"] + sorted(
    name for name in dict(globals()) if name.startswith("check_")
)
