"""The grounding corpus: real third-party decks, each in ``corpus/<name>/`` with

- ``deck.pdf`` or ``deck.pptx`` — the bytes as published (only decks whose licence allows
  redistribution are committed; ``source.json`` records the rest, and ``fetch`` in
  ``scripts/bench_grounding.py`` says where to get them),
- ``source.json`` — provenance: repository, commit, path, URL, licence, sha256,
- ``questions.jsonl`` — listener questions in ``podium eval``'s format (docs/evaluation.md),
  written by someone who had not read the ranking code, before any tuning,
- ``slides.txt`` — the slide text the labels were checked against.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.evaluation import EvalQuestion

CORPUS = Path(__file__).parent / "corpus"


@dataclass(frozen=True)
class CorpusDeck:
    name: str
    path: Path | None  # None: not redistributable and not fetched here
    source: dict[str, Any]
    questions: list[EvalQuestion]


def load(root: Path = CORPUS) -> list[CorpusDeck]:
    decks = []
    for folder in sorted(p for p in root.iterdir() if (p / "questions.jsonl").is_file()):
        source = json.loads((folder / "source.json").read_text())
        path = next((p for p in (folder / "deck.pdf", folder / "deck.pptx") if p.is_file()), None)
        if path is not None and hashlib.sha256(path.read_bytes()).hexdigest() != source["sha256"]:
            raise ValueError(f"{path} does not match the sha256 in its source.json")
        lines = (folder / "questions.jsonl").read_text().splitlines()
        questions = [EvalQuestion.model_validate_json(line) for line in lines if line.strip()]
        decks.append(CorpusDeck(folder.name, path, source, questions))
    return decks
