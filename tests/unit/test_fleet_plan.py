"""The capacity plan (scripts/fleet_plan.py, ``scripts/fleet-sim --plan N``): its arithmetic
follows the measured per-session costs, the levers move what they should, and a zone lost
still leaves room for the peak."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from fleet_plan import Inputs, plan  # noqa: E402

pytestmark = pytest.mark.unit


def test_ten_thousand_sessions_need_workers_for_every_slot_and_the_headroom() -> None:
    p = plan(Inputs(concurrent=10_000))
    # 10,000 sessions + 15 % warm = 11,500 slots of 4
    assert p.workers == 2875
    # a full worker (1.38 cores measured) fits its 1.5-core request: 10 a 16-core node
    assert p.worker_nodes == math.ceil(2875 / 10)
    # the cores the sessions burn: the avatar's measured marginal cost plus Whisper's turns
    assert p.worker_cores_used == pytest.approx(10_000 * (0.331 + 0.47 / 60), rel=1e-6)


def test_losing_one_zone_of_three_leaves_the_peak_within_target() -> None:
    i = Inputs(concurrent=10_000)
    p = plan(i)
    sfu_cores = i.concurrent * i.sfu_cores_per_session_avatar
    surviving = p.sfu_nodes * (i.zones - 1) / i.zones
    assert surviving * i.sfu_node_cores * i.sfu_target_utilisation >= sfu_cores
    cp_cores = (p.cp_requests_per_s / i.cp_requests_per_core) * 0.99  # creations cost more
    assert p.cp_processes * (i.zones - 1) / i.zones * i.cp_target_utilisation >= cp_cores


def test_the_levers_move_what_they_should() -> None:
    base = Inputs(concurrent=10_000)
    p = plan(base)
    # job liveness dominates the control plane: every 5 s instead of 2 s cuts its requests
    slower = plan(replace(base, job_heartbeat_s=5.0))
    assert p.cp_requests_per_s - slower.cp_requests_per_s == pytest.approx(5000 - 2000)
    assert slower.cp_processes < p.cp_processes
    assert slower.redis_ops_per_s < p.redis_ops_per_s
    # without the avatar the SFU forwards no video
    audio = plan(replace(base, avatar=False))
    assert audio.sfu_nodes < p.sfu_nodes and audio.sfu_gbps < p.sfu_gbps
    # today's 50 % headroom, sized for a fleet of tens of sessions, costs 875 more workers
    assert plan(replace(base, headroom_ratio=0.5)).workers - p.workers == 875
    # twice the sessions: twice the workers and Postgres rows (within rounding)
    double = plan(replace(base, concurrent=20_000))
    assert double.workers == 2 * p.workers
    assert double.pg_rows_per_s == pytest.approx(2 * p.pg_rows_per_s)


def test_fleet_sim_prints_the_plan() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fleet_sim.py"), "--plan", "10000"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "10,000 concurrent sessions" in out
    for part in ("workers", "control plane", "livekit-server", "Postgres", "Redis"):
        assert any(line.startswith(part) for line in out.splitlines()), part
    assert "2875 pods" in out
