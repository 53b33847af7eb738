"""Grounding benchmark: does deck search put the answering slide first for a listener's question?

Builds the labelled decks in tests/data/grounding/decks.py as PPTX files (title, body, speaker
notes), uploads them through the real API on an ephemeral stack, then asks every question of
control_plane.decks.search in each mode (hybrid, dense, lexical). Reports hit@1, hit@3 and MRR
per deck and overall (target: hybrid hit@1 >= 0.85), and the top hit's scores for answerable vs
unanswerable questions, for choosing a "the deck doesn't cover that" threshold.

    .venv/bin/python scripts/bench_grounding.py [--out docs/benchmarks/grounding]

Writes <out>.png (grouped bars + score distributions) and <out>.json (every question's ranking).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pptx import Presentation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane.db import create_pool  # noqa: E402
from control_plane.decks.embeddings import build_embedder  # noqa: E402
from control_plane.decks.search import search_deck  # noqa: E402
from shared.devstack.stack import EphemeralStack, TenantKey  # noqa: E402
from tests.data.grounding.decks import DECKS, HELD_OUT, Deck  # noqa: E402

MODES = ("hybrid", "dense", "lexical")
K = 25  # every slide of the largest deck, so MRR sees the whole ranking


def build_pptx(deck: Deck) -> bytes:
    prs = Presentation()
    layout = prs.slide_layouts[1]  # title and content
    for title, body, notes in deck["slides"]:
        slide = prs.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body  # one paragraph per line
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    buffer = io.BytesIO()
    prs.save(buffer)
    return buffer.getvalue()


async def upload(api: httpx.AsyncClient, tenant: TenantKey, deck: Deck) -> uuid.UUID:
    files = {"file": (f"{deck['name']}.pptx", build_pptx(deck))}
    resp = await api.post("/v1/decks", headers=tenant.headers, files=files)
    resp.raise_for_status()
    deck_id = resp.json()["deck_id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = (await api.get(f"/v1/decks/{deck_id}", headers=tenant.headers)).json()
        if state["status"] == "ready":
            assert state["progress"]["slides_total"] == len(deck["slides"]), state
            return uuid.UUID(deck_id)
        if state["status"] == "failed":
            raise RuntimeError(f"{deck['name']} failed to ingest: {state}")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{deck['name']} was not ready within 300 s")


def acceptable(answer: int | list[int] | None) -> list[int]:
    if answer is None:
        return []
    return [answer] if isinstance(answer, int) else list(answer)


async def evaluate(
    pool: Any, embedder: Any, deck: Deck, deck_id: uuid.UUID
) -> list[dict[str, Any]]:
    rows = []
    for question, answer in deck["questions"]:
        gold = acceptable(answer)
        row: dict[str, Any] = {"deck": deck["name"], "question": question, "answer": gold or None}
        for mode in MODES:
            ranked = await search_deck(pool, embedder, deck_id, question, K, mode=mode)
            order = [s.slide_index for s in ranked]
            rank = next((i for i, s in enumerate(order, start=1) if s in gold), None)
            top = ranked[0] if ranked else None
            row[mode] = {
                "rank": rank,
                "top": [
                    {
                        "slide": s.slide_index,
                        "title": s.title,
                        "score": round(s.score, 6),
                        "dense": round(s.best_dense, 4),
                        "matched": s.matched,
                    }
                    for s in ranked[:3]
                ],
                "top_score": top.score if top else 0.0,
                "top_dense": top.best_dense if top else -1.0,
            }
        rows.append(row)
    return rows


def metrics(rows: list[dict[str, Any]], mode: str) -> dict[str, float]:
    ranks = [r[mode]["rank"] for r in rows if r["answer"]]
    n = len(ranks)
    return {
        "n": n,
        "hit@1": sum(1 for r in ranks if r == 1) / n,
        "hit@3": sum(1 for r in ranks if r is not None and r <= 3) / n,
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
    }


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"n": len(ordered), "min": ordered[0], "p10": pct(0.1), "p50": pct(0.5),
            "p90": pct(0.9), "max": ordered[-1], "mean": statistics.mean(ordered)}  # fmt: skip


def separation(answerable: list[float], unanswerable: list[float]) -> dict[str, Any]:
    """ROC AUC of "an answerable question's top hit scores higher", and operating points: the
    threshold that still answers ``keep`` of the answerable questions, and the share of the
    unanswerable ones it would decline."""
    pairs = [(a > u) + 0.5 * (a == u) for a in answerable for u in unanswerable]
    ordered = sorted(answerable, reverse=True)
    points = []
    for keep in (0.95, 0.9, 0.8):
        threshold = ordered[max(0, math.ceil(keep * len(ordered)) - 1)]
        declined = sum(u < threshold for u in unanswerable) / len(unanswerable)
        points.append({"keep": keep, "threshold": threshold, "declines": declined})
    return {"auc": sum(pairs) / len(pairs), "operating_points": points}


def distributions(rows: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("top_score", "top_dense"):
        yes = [r[mode][key] for r in rows if r["answer"]]
        no = [r[mode][key] for r in rows if not r["answer"]]
        out[key] = {"answerable": summary(yes), "unanswerable": summary(no),
                    **separation(yes, no)}  # fmt: skip
    return out


def print_report(results: dict[str, Any]) -> None:
    decks = [*results["decks"], "overall"]
    print(f"\n{'mode':<8} {'deck':<28} {'n':>3} {'hit@1':>6} {'hit@3':>6} {'MRR':>6}")
    for mode in MODES:
        for name in decks:
            m = results["metrics"][mode][name]
            label = name + (" (held out)" if name == HELD_OUT else "")
            print(f"{mode:<8} {label:<28} {m['n']:>3} {m['hit@1']:>6.3f} {m['hit@3']:>6.3f} "
                  f"{m['mrr']:>6.3f}")  # fmt: skip
    print("\ntop hit's scores, answerable vs unanswerable questions (threshold: answers 95% / 90%")
    print("of the answerable ones; 'declines': share of unanswerable ones it would turn away)")
    header = ["mode".ljust(8), "score".ljust(10), "answerable p10/p50/p90".rjust(24)]
    header += ["unanswerable p10/p50/p90".rjust(26), "  AUC", "@95%".rjust(16), "@90%".rjust(16)]
    print(" ".join(header))
    for mode in MODES:
        for key, dist in results["distributions"][mode].items():
            if mode == "lexical" and key == "top_dense":
                continue  # no dense score in lexical mode
            yes, no = dist["answerable"], dist["unanswerable"]
            cells = [f"{d['p10']:.3f}/{d['p50']:.3f}/{d['p90']:.3f}" for d in (yes, no)]
            points = [
                f"{p['threshold']:.3f} ({p['declines']:.0%})" for p in dist["operating_points"][:2]
            ]
            print(f"{mode:<8} {key:<10} {cells[0]:>24} {cells[1]:>26}   {dist['auc']:.3f} "
                  f"{points[0]:>16} {points[1]:>16}")  # fmt: skip


def plot(results: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decks = [*results["decks"], "overall"]
    fig, (bars, dist) = plt.subplots(1, 2, figsize=(13, 4.5), width_ratios=[2, 1])
    width = 0.8 / len(MODES)
    for i, mode in enumerate(MODES):
        values = [results["metrics"][mode][d]["hit@1"] for d in decks]
        xs = [x + (i - (len(MODES) - 1) / 2) * width for x in range(len(decks))]
        drawn = bars.bar(xs, values, width, label=mode)
        bars.bar_label(drawn, fmt="%.2f", fontsize=7)
    bars.axhline(0.85, color="tab:red", linestyle="--", linewidth=1, label="target 0.85")
    bars.set_xticks(
        range(len(decks)), [d + ("\n(held out)" if d == HELD_OUT else "") for d in decks]
    )
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("hit@1 (answering slide ranked first)")
    bars.set_title("Deck search grounding, by mode")
    bars.legend(fontsize=8, loc="lower right")
    yes = [r["hybrid"]["top_score"] for r in rows if r["answer"]]
    no = [r["hybrid"]["top_score"] for r in rows if not r["answer"]]
    dist.hist(
        [yes, no], bins=20, label=["answerable", "not in deck"], color=["tab:gray", "tab:red"]
    )
    dist.set_xlabel("hybrid top hit: score (as GET /search returns it)")
    dist.set_ylabel("questions")
    dist.set_title("Top-hit similarity")
    dist.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


async def run(stack: EphemeralStack) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    tenant = stack.create_tenant("grounding")
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as api:
        ids = {deck["name"]: await upload(api, tenant, deck) for deck in DECKS}
    embedder = build_embedder("local")
    pool = await create_pool(stack.postgres.url(), min_size=1, max_size=2)
    try:
        rows = [r for d in DECKS for r in await evaluate(pool, embedder, d, ids[d["name"]])]
    finally:
        await pool.close()
    names = [d["name"] for d in DECKS]
    results: dict[str, Any] = {"decks": names, "held_out": HELD_OUT, "metrics": {},
                               "distributions": {}}  # fmt: skip
    for mode in MODES:
        per = {n: metrics([r for r in rows if r["deck"] == n], mode) for n in names}
        per["overall"] = metrics(rows, mode)
        per["tuning"] = metrics([r for r in rows if r["deck"] != HELD_OUT], mode)
        results["metrics"][mode] = per
        results["distributions"][mode] = distributions(rows, mode)
    return results, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/grounding")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane()
        results, rows = asyncio.run(run(stack))
    print_report(results)
    plot(results, rows, args.out.with_suffix(".png"))
    args.out.with_suffix(".json").write_text(
        json.dumps({**results, "questions": rows}, indent=1, ensure_ascii=False) + "\n"
    )
    print(f"\nplot: {args.out.with_suffix('.png')}\nper question: {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
