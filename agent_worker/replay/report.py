"""What a replay prints: recorded vs replayed, and the waterfall of the recorded stages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.schemas import StoredTurn

from .records import ReplayError
from .turn import Replayed, parse_arguments, same_tools


@dataclass
class Bar:
    label: str
    start: float
    end: float
    mark: float | None = None  # first token / first byte


def waterfall(turn: StoredTurn) -> list[Bar]:
    """The recorded stages, in seconds from the end of the user's speech."""
    t = turn.timings
    origin = t.user_stopped_at
    if origin is None:
        starts = [c.started_at for c in turn.calls if c.started_at is not None]
        origin = min(starts) if starts else None
    bars: list[Bar] = []
    if t.transcription_delay is not None:
        bars.append(Bar("transcription delay", 0.0, t.transcription_delay))
    if t.end_of_turn_delay is not None:
        bars.append(Bar("end of turn (EOU)", 0.0, t.end_of_turn_delay))
    for call in turn.calls:
        if call.started_at is None or origin is None or call.duration is None:
            continue
        start = call.started_at - origin
        name = f"{call.stage} {call.model or call.provider or ''}".strip()
        mark = start + call.first_output if call.first_output is not None else None
        bars.append(Bar(name, start, start + call.duration, mark))
    for tool in turn.tool_calls:
        if tool.started_at is None or origin is None or tool.duration is None:
            continue
        start = tool.started_at - origin
        bars.append(Bar(f"tool {tool.name}", start, start + tool.duration))
    bars.sort(key=lambda bar: bar.start)
    if t.e2e_latency is not None:
        bars.append(Bar("agent audio starts (e2e)", t.e2e_latency, t.e2e_latency))
    return bars


def render_waterfall(bars: list[Bar], width: int = 48) -> list[str]:
    if not bars:
        return ["  (no timings recorded)"]
    low = min(0.0, *(b.start for b in bars))
    high = max(b.end for b in bars) or 1.0
    scale = width / max(high - low, 1e-6)
    lines = []
    for bar in bars:
        left = int((bar.start - low) * scale)
        length = max(1, int((bar.end - bar.start) * scale))
        row = [" "] * (width + 1)
        for i in range(left, min(width + 1, left + length)):
            row[i] = "█"
        if bar.mark is not None:
            row[min(width, int((bar.mark - low) * scale))] = "▏"
        lines.append(f"  {bar.label[:28]:<28} {''.join(row)} {bar.start:+7.3f} → {bar.end:7.3f} s")
    return lines


def report(turn: StoredTurn, replayed: Replayed) -> str:
    def tools_of(calls: list[tuple[str, Any]]) -> str:
        return "; ".join(f"{n}({json.dumps(a)})" for n, a in calls) or "—"

    recorded_tools = tools_of([(c.name, parse_arguments(c.arguments)) for c in turn.tool_calls])
    replayed_tools = tools_of([(n, a) for n, a, _ in replayed.tool_calls])
    verdict = "same" if same_tools(turn, replayed) else "DIFFERENT"
    t = turn.timings
    out = [
        f"Turn {turn.number}  ({turn.turn_id}, {turn.started_at:%Y-%m-%d %H:%M:%S} UTC)",
        f"  user:      {turn.user_text or '—'}",
        f"  tools:     recorded  {recorded_tools}",
        f"             replayed  {replayed_tools}   [{verdict}]",
        f"  agent:     recorded  {turn.agent_text or '—'}"
        + ("  (interrupted)" if turn.interrupted else ""),
        f"             replayed  {replayed.agent_text or '—'}",
        f"  slide:     recorded  {turn.slide_before} → {turn.slide_after}"
        f"   replayed  {turn.slide_before or 1} → {replayed.slide_after}",
        f"  models:    recorded  {', '.join(f'{k}={v}' for k, v in turn.providers.items()) or '—'}"
        f"   replayed  llm={replayed.model}",
        f"  timings:   recorded  EOU {_s(t.end_of_turn_delay)}, transcription "
        f"{_s(t.transcription_delay)}, LLM TTFT {_s(t.llm_ttft)}, TTS TTFB {_s(t.tts_ttfb)}, "
        f"end-to-end {_s(t.e2e_latency)}",
        f"             replayed  LLM TTFT {', '.join(_s(x) for x in replayed.llm_ttft) or '—'}, "
        f"text turn {replayed.seconds:.3f} s",
        "  waterfall (recorded, seconds from the end of the user's speech):",
        *render_waterfall(waterfall(turn)),
    ]
    return "\n".join(out)


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def plot(turns: list[StoredTurn], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ReplayError("--plot needs matplotlib (pip install '.[dev]')") from exc
    rows = [(turn, waterfall(turn)) for turn in turns]
    height = sum(max(1, len(bars)) for _, bars in rows)
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(10, 1 + 0.35 * height), squeeze=False, constrained_layout=True
    )
    for ax, (turn, bars) in zip(axes[:, 0], rows, strict=True):
        for y, bar in enumerate(bars):
            ax.barh(y, max(bar.end - bar.start, 0.005), left=bar.start, color="tab:blue")
            if bar.mark is not None:
                ax.plot([bar.mark], [y], marker="|", color="black", markersize=12)
        ax.set_yticks(range(len(bars)), [b.label for b in bars])
        ax.invert_yaxis()
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_title(f"Turn {turn.number}: {(turn.user_text or '')[:60]}", fontsize=9, loc="left")
        ax.set_xlabel("seconds from the end of the user's speech")
    fig.savefig(path, dpi=120)
    plt.close(fig)
