"""The worker's availability, as livekit-server asks for it when it dispatches a session.

The framework answers each job request from the load of the jobs running plus an estimate for
the ones accepted but not launched yet. Idle, it estimated a job at the whole worker (one warm
process): of three sessions created at once, the third was answered "not available" and
livekit-server dropped its dispatch (tests/e2e/test_admission.py's burst saw it in CI).
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
from livekit.agents import AgentServer

from agent_worker.server import _FULL, SlotServer, session_slot_load

MAX_SESSIONS = 4


def _server(cls: type[AgentServer], **extra: int) -> AgentServer:
    return cls(
        ws_url="ws://127.0.0.1:9",
        api_key="devkey",
        api_secret="secret" * 6,
        num_idle_processes=1,
        load_fnc=partial(session_slot_load, MAX_SESSIONS),
        load_threshold=_FULL,
        **extra,
    )


def _accepts(server: AgentServer, *, running: float, answering: int) -> bool:
    server._devmode = False  # set by run(): production mode, where the threshold applies
    server._proc_pool = SimpleNamespace(processes=[])  # no job process running here
    server._worker_load = running / MAX_SESSIONS  # what load_fnc returns for the jobs running
    server._reserved_slots = answering  # requests said "available" to, not launched yet
    return server._is_available()


@pytest.mark.parametrize("running", [0, 1, 2])
def test_simultaneous_requests_are_accepted_while_slots_are_free(running: int) -> None:
    server = _server(SlotServer, max_sessions=MAX_SESSIONS)
    for answering in range(MAX_SESSIONS - running):
        assert _accepts(server, running=running, answering=answering), answering
    assert not _accepts(server, running=running, answering=MAX_SESSIONS - running)


def test_the_frameworks_own_estimate_refuses_a_second_request_at_an_idle_worker() -> None:
    """The defect SlotServer exists for; when this fails, the framework fixed it."""
    server = _server(AgentServer)
    assert _accepts(server, running=0, answering=0)
    assert not _accepts(server, running=0, answering=1)
