"""Capacity plan on paper: what N concurrent sessions need, from the per-session costs measured
here (docs/benchmarks.md, docs/fleet.md) and stated assumptions; steady state at the peak, with
headroom, over zones so that losing one zone still leaves room for the peak.

    .venv/bin/python scripts/fleet-sim --plan 10000
    .venv/bin/python scripts/fleet-sim --plan 10000 --audio-only --job-heartbeat 5

Every figure carries its source: MEASURED (a benchmark on this 2-core machine, under other load,
so an upper bound for a dedicated core), PUBLISHED, or ASSUMED (a product guess to replace with
production telemetry). The table is a model, not a run: nothing here ran 10,000 sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Inputs:
    concurrent: int = 10_000
    avatar: bool = True
    zones: int = 3
    # worker (docs/benchmarks.md#avatar, docs/fleet.md#sizing-a-worker): MEASURED
    cores_per_session_avatar: float = 0.331  # marginal, least squares over N = 1..4
    cores_per_session_audio: float = 0.284
    worker_idle_cores: float = 0.02
    worker_base_gb: float = 0.73  # worker, Piper, forkserver, one warm process (PSS)
    gb_per_session: float = 0.23
    whisper_core_s_per_turn: float = 0.47  # Whisper tiny.en pass per user utterance (p95 end)
    # ASSUMED session behaviour
    user_turns_per_min: float = 1.0
    agent_turns_per_min: float = 2.0  # narration sentences batched per slide + answers
    slide_changes_per_min: float = 1.3
    session_mean_min: float = 15.0  # fleet-sim's log-normal, median 12 min
    usage_reports_per_min: float = 1.0
    # worker pods (deploy/k8s/base/worker.yaml): 4 slots, requests 1.5 cores / 2 GiB
    slots_per_worker: int = 4
    headroom_sessions: int = 4
    headroom_ratio: float = 0.15  # the default 0.5 is for a fleet of tens of sessions (below)
    node_cores: int = 16
    node_gb: int = 64
    node_reserved_cores: float = 1.0
    # control plane: job liveness every PODIUM_JOB_HEARTBEAT_SECONDS, fleet heartbeats every 5 s
    job_heartbeat_s: float = 2.0
    worker_heartbeat_s: float = 5.0
    # MEASURED (issue 18's table, one process, 16 clients, before the throughput work landed):
    # slide changes 329/s, session creations 124/s. Used as requests/s per process core.
    cp_requests_per_core: float = 329.0
    cp_creations_per_core: float = 124.0
    cp_target_utilisation: float = 0.6
    # livekit-server: MEASURED 0.09 cores for 4 avatar sessions (docs/benchmarks.md#avatar)
    sfu_cores_per_session_avatar: float = 0.0225
    sfu_cores_per_session_audio: float = 0.01  # ASSUMED: no video track (not measured here)
    video_mbps: float = 0.5  # ASSUMED: 640x360 at 25 fps, the SDK's default encoding
    audio_mbps: float = 0.032
    sfu_node_cores: int = 16
    sfu_target_utilisation: float = 0.6
    # Postgres rows, ASSUMED sizes with indexes (the audit row is MEASURED: 267 bytes)
    turn_row_kb: float = 1.5
    message_row_kb: float = 0.5
    transition_row_kb: float = 0.3
    usage_row_kb: float = 0.2
    audit_row_kb: float = 0.267
    session_row_kb: float = 2.0
    retention_days: int = 90
    duty_cycle: float = 0.35  # ASSUMED: mean load over a day as a share of the peak
    redis_ops_per_core: float = 80_000.0  # ASSUMED: simple commands on one Redis core


@dataclass(frozen=True)
class Line:
    part: str
    quantity: str
    basis: str


@dataclass(frozen=True)
class Plan:
    inputs: Inputs
    workers: int
    worker_nodes: int
    worker_cores_used: float
    cp_requests_per_s: float
    cp_processes: int
    sfu_nodes: int
    sfu_gbps: float
    pg_rows_per_s: float
    pg_lookups_per_s: float
    pg_gb_per_session_hour: float
    pg_storage_tb: float
    redis_ops_per_s: float
    redis_admission_reads_per_s: float
    lines: list[Line]


def _zone_spare(count: float, zones: int) -> int:
    """Enough units that the peak still fits with one zone of ``zones`` lost."""
    if zones <= 1:
        return math.ceil(count)
    return math.ceil(count * zones / (zones - 1))


def plan(i: Inputs) -> Plan:
    n = i.concurrent
    per_min = n / 60
    # --- workers -------------------------------------------------------------------------
    session_cores = i.cores_per_session_avatar if i.avatar else i.cores_per_session_audio
    session_cores += i.user_turns_per_min * i.whisper_core_s_per_turn / 60
    headroom = max(i.headroom_sessions, math.ceil(n * i.headroom_ratio))
    workers = math.ceil((n + headroom) / i.slots_per_worker)
    worker_cores = i.worker_idle_cores + i.slots_per_worker * session_cores
    worker_gb = i.worker_base_gb + i.slots_per_worker * i.gb_per_session
    per_node = min(
        math.floor((i.node_cores - i.node_reserved_cores) / max(worker_cores, 1.5)),
        math.floor(i.node_gb * 0.9 / max(worker_gb, 2.0)),
    )
    worker_nodes = math.ceil(workers / per_node)
    # --- control plane ------------------------------------------------------------------
    creations = n / (i.session_mean_min * 60)
    requests = {
        "job alive": n / i.job_heartbeat_s,
        "worker heartbeats": workers / i.worker_heartbeat_s,
        "slide changes": per_min * i.slide_changes_per_min,
        "turn records": per_min * (i.user_turns_per_min + i.agent_turns_per_min),
        "messages": per_min * (i.user_turns_per_min + i.agent_turns_per_min),
        "usage reports": per_min * i.usage_reports_per_min,
        "session creations": creations,
    }
    cp_requests = sum(requests.values())
    cp_cores = (cp_requests - creations) / i.cp_requests_per_core
    cp_cores += creations / i.cp_creations_per_core
    cp_processes = _zone_spare(cp_cores / i.cp_target_utilisation, i.zones)
    # --- LiveKit ---------------------------------------------------------------------------
    sfu_session = i.sfu_cores_per_session_avatar if i.avatar else i.sfu_cores_per_session_audio
    sfu_cores = n * sfu_session
    sfu_nodes = _zone_spare(sfu_cores / (i.sfu_node_cores * i.sfu_target_utilisation), i.zones)
    # each way: the user's audio in, the presenter's audio (and video) in and out
    mbps = 2 * i.audio_mbps + (i.video_mbps if i.avatar else 0.0)
    sfu_gbps = n * mbps / 1000
    # --- Postgres --------------------------------------------------------------------------
    turns = per_min * (i.user_turns_per_min + i.agent_turns_per_min)
    rows = {
        "turns": (turns, i.turn_row_kb),
        "messages": (turns, i.message_row_kb),
        "slide transitions (+ session row update)": (
            per_min * i.slide_changes_per_min,
            i.transition_row_kb,
        ),
        "usage": (per_min * i.usage_reports_per_min, i.usage_row_kb),
        "sessions + events + audit": (creations * 6, i.session_row_kb / 6 + i.audit_row_kb),
    }
    pg_rows = sum(rate for rate, _ in rows.values())
    kb_per_s = sum(rate * kb for rate, kb in rows.values())
    gb_per_session_hour = kb_per_s * 3600 / n / 1e6
    storage_tb = kb_per_s * 86400 * i.duty_cycle * i.retention_days / 1e9
    lookups = n / i.job_heartbeat_s  # mark_started: an UPDATE that matches nothing once active
    # --- Redis ---------------------------------------------------------------------------
    redis_ops = (
        3 * n / i.job_heartbeat_s  # SET NX, GET, ZADD
        + 5 * workers / i.worker_heartbeat_s  # the heartbeat pipeline
        + 2 * (cp_requests - requests["job alive"])  # rate limits, hot state, pub/sub
    )
    admission_reads = creations * workers  # the admission script reads every heartbeat
    lines = [
        Line(
            "workers",
            f"{workers} pods ({i.slots_per_worker} slots) on {worker_nodes} nodes of "
            f"{i.node_cores} cores",
            f"{session_cores:.3f} cores/session MEASURED (+ Whisper per user turn), "
            f"headroom max({i.headroom_sessions}, {i.headroom_ratio:.0%}); "
            f"{worker_cores:.2f} cores, {worker_gb:.2f} GB a full worker",
        ),
        Line(
            "control plane",
            f"{cp_processes} processes (~{cp_requests:,.0f} req/s)",
            f"job alive {requests['job alive']:,.0f}/s of it; {i.cp_requests_per_core:.0f} "
            f"req/s a core MEASURED; {i.cp_target_utilisation:.0%} target, a zone spare",
        ),
        Line(
            "livekit-server",
            f"{sfu_nodes} nodes of {i.sfu_node_cores} cores, {sfu_gbps:.1f} Gbit/s each way",
            f"{sfu_session:.4f} cores/session; {i.sfu_target_utilisation:.0%} target, "
            "a zone spare; rooms are 2 participants, so any node holds any room",
        ),
        Line(
            "Postgres",
            f"{pg_rows:,.0f} rows/s + {lookups:,.0f} lookups/s; "
            f"{storage_tb:.1f} TB at {i.retention_days} d",
            f"{gb_per_session_hour * 1000:.2f} MB a session-hour (ASSUMED row sizes), "
            f"duty {i.duty_cycle:.0%}; one primary + a synchronous replica in another zone",
        ),
        Line(
            "Redis",
            f"{redis_ops:,.0f} ops/s + {admission_reads:,.0f} heartbeat reads/s in admission",
            f"~{redis_ops / i.redis_ops_per_core:.1f} cores of simple commands; "
            "primary + replica, the fleet keys in one hash slot",
        ),
    ]
    return Plan(
        inputs=i,
        workers=workers,
        worker_nodes=worker_nodes,
        worker_cores_used=n * session_cores,
        cp_requests_per_s=cp_requests,
        cp_processes=cp_processes,
        sfu_nodes=sfu_nodes,
        sfu_gbps=sfu_gbps,
        pg_rows_per_s=pg_rows,
        pg_lookups_per_s=lookups,
        pg_gb_per_session_hour=gb_per_session_hour,
        pg_storage_tb=storage_tb,
        redis_ops_per_s=redis_ops,
        redis_admission_reads_per_s=admission_reads,
        lines=lines,
    )


def print_plan(p: Plan) -> None:
    i = p.inputs
    print(
        f"capacity plan: {i.concurrent:,} concurrent sessions, "
        f"{'local avatar' if i.avatar else 'audio only'}, {i.zones} zones "
        f"(one lost still holds the peak); job heartbeat {i.job_heartbeat_s:g} s"
    )
    width = max(len(line.quantity) for line in p.lines)
    for line in p.lines:
        print(f"{line.part:15} {line.quantity:{width}}  {line.basis}")


def variants(base: Inputs) -> list[tuple[str, Plan]]:
    """The plan and the levers that move it most."""
    return [
        ("as configured", plan(base)),
        ("headroom 50 % (today's default)", plan(replace(base, headroom_ratio=0.5))),
        ("job heartbeat 5 s", plan(replace(base, job_heartbeat_s=5.0))),
        ("audio only", plan(replace(base, avatar=False))),
    ]


def print_variants(base: Inputs) -> None:
    print(
        f"\n{'variant':32} {'workers':>8} {'nodes':>6} {'cp proc':>8} {'cp req/s':>9} "
        f"{'sfu nodes':>9} {'redis ops/s':>12}"
    )
    for name, p in variants(base):
        print(
            f"{name:32} {p.workers:8d} {p.worker_nodes:6d} {p.cp_processes:8d} "
            f"{p.cp_requests_per_s:9,.0f} {p.sfu_nodes:9d} {p.redis_ops_per_s:12,.0f}"
        )
