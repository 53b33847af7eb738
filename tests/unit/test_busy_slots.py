"""What a worker's heartbeat says about its busy slots: a new job at once, a freed slot only
once livekit-server has heard of it too (else admission promises a slot the server then offers
to a worker it still counts as full, and drops the dispatch)."""

from __future__ import annotations

from agent_worker.heartbeat import FREED_SLOT_DELAY_S, BusySlots


def test_a_new_job_is_reported_at_once() -> None:
    busy = BusySlots()
    assert busy.report(1, 0.0) == 1
    assert busy.report(3, 0.1) == 3


def test_a_freed_slot_is_reported_free_only_after_the_delay() -> None:
    busy = BusySlots()
    busy.report(3, 0.0)
    assert busy.report(2, 10.0) == 3  # just freed: livekit-server may still count it
    assert busy.report(2, 10.0 + FREED_SLOT_DELAY_S / 2) == 3
    assert busy.report(2, 10.0 + FREED_SLOT_DELAY_S) == 2
    assert busy.report(2, 20.0) == 2


def test_a_job_arriving_while_a_slot_is_held_resets_the_wait() -> None:
    busy = BusySlots()
    busy.report(2, 0.0)
    assert busy.report(1, 1.0) == 2
    assert busy.report(2, 1.5) == 2  # the freed slot was taken again
    assert busy.report(1, 2.0) == 2  # a new fall starts its own wait
    assert busy.report(1, 2.0 + FREED_SLOT_DELAY_S) == 1
