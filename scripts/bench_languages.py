"""Grounding on a Spanish deck, with the protocol of the English decks (docs/evaluation.md):
upload the deck through the real API on an ephemeral stack, run its labelled questions through
``POST /v1/decks/{id}/evaluations`` (the presenter's decisions, the shipped ranking parameters,
fitted on English decks only), and print hit@1, hit@3, answered, navigation landed and
off-deck declined. Twice: with the multilingual embedder (the default for decks not in English)
and with every deck on the English MiniLM (``PODIUM_EMBEDDING_MULTILINGUAL=false``).

The deck and its 32 questions are self-written (tests/data/languages/): a small set, so one
question is 3 percentage points.

    .venv/bin/python scripts/bench_languages.py [--out docs/benchmarks/languages.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.devstack.stack import EphemeralStack  # noqa: E402
from tests.data.languages.spanish_deck import QUESTIONS, make_spanish_deck  # noqa: E402


async def evaluate(api_url: str, headers: dict[str, str]) -> dict[str, Any]:
    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=300) as api:
        files = {"file": ("rutalia.pptx", make_spanish_deck())}
        resp = await api.post("/v1/decks", files=files)
        resp.raise_for_status()
        deck_id = resp.json()["deck_id"]
        deadline = time.monotonic() + 300
        deck: dict[str, Any] = {}
        while time.monotonic() < deadline:
            deck = (await api.get(f"/v1/decks/{deck_id}")).json()
            if deck["status"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.2)
        if deck.get("status") != "ready":
            raise RuntimeError(f"the deck did not become ready: {deck}")
        resp = await api.post(f"/v1/decks/{deck_id}/evaluations", json={"questions": questions})
        resp.raise_for_status()
        report: dict[str, Any] = resp.json()
        report["deck"] = {k: deck[k] for k in ("language", "embedding_model")}
        return report


def run(multilingual: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        stack.start_control_plane(PODIUM_EMBEDDING_MULTILINGUAL=str(multilingual).lower())
        tenant = stack.create_tenant("languages")
        return asyncio.run(evaluate(stack.api_url, tenant.headers))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/languages.json")
    args = parser.parse_args()
    reports = {"multilingual": run(True), "english MiniLM": run(False)}
    keys = ("hit@1", "hit@3", "answered", "navigate", "decline", "ms p50")
    print(f"{'Spanish deck (10 slides, 32 questions)':<48}" + "".join(f"{k:>10}" for k in keys))
    for name, report in reports.items():
        s = report["summary"]
        cells = [_pct(s["hit_at_1"]), _pct(s["hit_at_3"]), _pct(s["answered"]),
                 _pct(s["navigate"]["correct"]), _pct(s["decline"]["correct"]),
                 f"{s['ms_p50']:.1f}"]  # fmt: skip
        label = f"{name} ({report['deck']['embedding_model']})"
        print(f"{label:<48}" + "".join(f"{c:>10}" for c in cells))
    for r in reports["multilingual"]["results"]:
        if r["correct"] is False:
            print(f"  miss: {r['question']!r} expected {r['expect']} {r['slides']}, "
                  f"did {r['action']} {r['slide']} (rank {r['rank']})")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=1, ensure_ascii=False) + "\n")
    print(f"\nper question: {args.out}")


if __name__ == "__main__":
    main()
