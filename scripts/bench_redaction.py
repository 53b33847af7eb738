"""PII redaction benchmark: precision, recall and F1 per entity of `shared.redaction.find_pii` on
the labelled spoken-style sentences in tests/data/pii/ (tune.jsonl: looked at while developing;
eval.jsonl: held out, written before any tuning), and its cost per sentence.

Match rule: a prediction is correct when it overlaps a gold span of the same entity; a gold span is
recalled when a prediction of its entity overlaps it. "clean FP" counts sentences without any
personal data in which something was found (what masking would needlessly remove).
Prints a table; writes a plot.

    .venv/bin/python scripts/bench_redaction.py [--sets tune eval]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared import redaction  # noqa: E402

ENTITIES = ("EMAIL", "PHONE", "CARD", "IBAN", "NATIONAL_ID", "ADDRESS", "PERSON")
DATA = ROOT / "tests/data/pii"

Row = dict[str, object]
Counts = dict[str, list[int]]  # entity -> [correct predictions, predictions, recalled, gold]


def load(name: str) -> list[Row]:
    with (DATA / f"{name}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def score(rows: list[Row], show_errors: bool) -> tuple[Counts, int, int, list[float]]:
    counts: Counts = {e: [0, 0, 0, 0] for e in ENTITIES}
    clean = clean_flagged = 0
    latencies: list[float] = []
    for row in rows:
        text = str(row["text"])
        gold = [(int(s), int(e), str(k)) for s, e, k in row["spans"]]  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        found = redaction.find_pii(text)
        latencies.append((time.perf_counter() - t0) * 1000)
        for f in found:
            ok = any(f.entity == k and f.start < e and s < f.end for s, e, k in gold)
            counts[f.entity][0] += ok
            counts[f.entity][1] += 1
            if show_errors and not ok:
                print(f"  FP {f.entity:<11} {text[f.start : f.end]!r:<40} in {text!r}")
        for s, e, k in gold:
            hit = any(f.entity == k and f.start < e and s < f.end for f in found)
            counts[k][2] += hit
            counts[k][3] += 1
            if show_errors and not hit:
                print(f"  FN {k:<11} {text[s:e]!r:<40} in {text!r}")
        if not gold:
            clean += 1
            clean_flagged += bool(found)
    return counts, clean, clean_flagged, latencies


def prf(c: list[int]) -> tuple[float, float, float]:
    precision = c[0] / c[1] if c[1] else 1.0
    recall = c[2] / c[3] if c[3] else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def table(name: str, counts: Counts, clean: int, flagged: int, latencies: list[float]) -> None:
    print(f"\n{name}: {sum(c[3] for c in counts.values())} gold spans")
    print(f"{'entity':<12} {'gold':>5} {'pred':>5} {'P':>7} {'R':>7} {'F1':>7}")
    total = [0, 0, 0, 0]
    for entity, c in counts.items():
        total = [a + b for a, b in zip(total, c, strict=True)]
        p, r, f1 = prf(c)
        print(f"{entity:<12} {c[3]:>5} {c[1]:>5} {p:>7.1%} {r:>7.1%} {f1:>7.1%}")
    p, r, f1 = prf(total)
    print(f"{'overall':<12} {total[3]:>5} {total[1]:>5} {p:>7.1%} {r:>7.1%} {f1:>7.1%}")
    print(f"clean sentences with a finding: {flagged}/{clean}")
    p50, p95 = pct(latencies, 0.5), pct(latencies, 0.95)
    print(f"find_pii per sentence: p50 {p50:.1f} ms, p95 {p95:.1f} ms")


def plot(results: dict[str, Counts], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.38
    for ax, metric, index in ((axes[0], "precision", 0), (axes[1], "recall", 1)):
        for k, (name, counts) in enumerate(results.items()):
            values = [prf(counts[e])[index] for e in ENTITIES]
            xs = [i + (k - 0.5) * width for i in range(len(ENTITIES))]
            ax.bar(xs, values, width, label="eval (held out)" if name == "eval" else name)
        ax.set_xticks(range(len(ENTITIES)), ENTITIES, rotation=30, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(metric)
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle("find_pii on spoken-style sentences (overlap match)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["tune", "eval"])
    parser.add_argument("--errors", action="store_true", help="print each miss and false alarm")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/redaction.png")
    args = parser.parse_args()

    t0 = time.perf_counter()
    redaction.warm()
    print(f"warm(): {time.perf_counter() - t0:.2f} s (imports + spaCy model)")
    redaction.find_pii("warm-up sentence for John Smith at 4111 1111 1111 1111")

    results: dict[str, Counts] = {}
    for name in args.sets:
        counts, clean, flagged, latencies = score(load(name), args.errors)
        table(name, counts, clean, flagged, latencies)
        results[name] = counts

    sentences = [str(r["text"]) for name in args.sets for r in load(name)]
    long_text = ". ".join(sentences)
    while len(long_text) < 10_000:
        long_text += ". " + long_text
    long_text = long_text[:10_000]
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        redaction.find_pii(long_text)
        runs.append(time.perf_counter() - t0)
    print(f"\nfind_pii on 10,000 characters: median {statistics.median(runs) * 1000:.0f} ms")
    plot(results, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
