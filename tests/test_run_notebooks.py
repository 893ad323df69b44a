"""``make html``'s runner: a reply whose wake-up was lost is picked up within a slice."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from queue import Empty
from time import monotonic

import pytest
from jupyter_client.channels import AsyncZMQSocketChannel

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "nbconvert_sliced.py"


@pytest.fixture
def sliced(monkeypatch):
    # the script patches jupyter_client on import: undo that after the test
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", AsyncZMQSocketChannel.get_msg)
    spec = importlib.util.spec_from_file_location("nbconvert_sliced", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "SLICE_S", 0.05)
    return module


class Channel:
    """A channel whose reply is ready after ``ready_at`` s but whose polls never see it.

    ``get_msg`` behaves like pyzmq's poll after a lost wake-up: it sleeps its whole
    timeout, then its final check finds the reply if one is there by then.
    """

    def __init__(self, ready_at: float) -> None:
        self.ready_at = monotonic() + ready_at
        self.timeouts: list[float | None] = []

    async def get_msg(self, timeout: float | None = None) -> dict:
        self.timeouts.append(timeout)
        await asyncio.sleep(timeout)
        if monotonic() >= self.ready_at:
            return {"msg_type": "execute_reply"}
        raise Empty


def test_a_reply_ready_early_is_found_within_a_slice_not_at_the_deadline(sliced, monkeypatch):
    # Prepare: the reply is ready at 0.1 s; the cell's deadline is 30 s
    channel = Channel(ready_at=0.1)
    monkeypatch.setattr(sliced, "_get_msg", Channel.get_msg)
    # Execute
    start = monotonic()
    reply = asyncio.run(sliced.get_msg_in_slices(channel, timeout=30.0))
    # Assert: found a slice after it was ready, every wait no longer than a slice
    assert reply == {"msg_type": "execute_reply"}
    assert monotonic() - start < 1.0
    assert max(channel.timeouts) <= 0.05


def test_no_reply_still_times_out_at_the_callers_deadline(sliced, monkeypatch):
    # Prepare: a reply that never comes
    channel = Channel(ready_at=1e9)
    monkeypatch.setattr(sliced, "_get_msg", Channel.get_msg)
    # Execute / Assert: Empty after the full timeout, as nbclient expects
    start = monotonic()
    with pytest.raises(Empty):
        asyncio.run(sliced.get_msg_in_slices(channel, timeout=0.3))
    assert 0.3 <= monotonic() - start < 1.0
    assert len(channel.timeouts) >= 5
