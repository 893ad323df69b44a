"""``jupyter nbconvert``, waiting for each kernel reply in 1 s slices (used by run_notebooks.py).

    python scripts/nbconvert_sliced.py --to html --execute notebooks/08_federated_averaging.ipynb

nbconvert's client waits for a cell's reply with ``zmq.asyncio``, which is woken by
ZeroMQ's edge-triggered file descriptor. Now and then that wake-up is lost (pyzmq#2173
describes the mechanism): the reply sits in the socket, the kernel is idle, and the
client sleeps until the cell timeout, when its last check finds the reply and goes on as
if nothing had happened. Here that turned a 25 s notebook into a 10-minute one. Polling
in 1 s slices until the same deadline makes that last check every second, so a lost
wake-up costs at most a second; the timeout itself is unchanged.
"""

from __future__ import annotations

import sys
from queue import Empty
from time import monotonic
from typing import Any

from jupyter_client.channels import AsyncZMQSocketChannel

SLICE_S = 1.0
_get_msg = AsyncZMQSocketChannel.get_msg


async def get_msg_in_slices(
    self: AsyncZMQSocketChannel, timeout: float | None = None
) -> dict[str, Any]:
    """``AsyncZMQSocketChannel.get_msg``, polling at most ``SLICE_S`` at a time."""
    deadline = None if timeout is None else monotonic() + timeout
    while True:
        left = SLICE_S if deadline is None else max(0.0, min(SLICE_S, deadline - monotonic()))
        try:
            return await _get_msg(self, timeout=left)
        except Empty:
            if deadline is not None and monotonic() >= deadline:
                raise


AsyncZMQSocketChannel.get_msg = get_msg_in_slices  # type: ignore[method-assign]

if __name__ == "__main__":
    from nbconvert.nbconvertapp import main

    sys.exit(main())
