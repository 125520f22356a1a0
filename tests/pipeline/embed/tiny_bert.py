"""A tiny, randomly initialized BERT checkpoint in Hugging Face layout, built on the fly.

Weights are written as `model.safetensors` with PyTorch parameter names (as sentence-transformers
checkpoints have them), so tests exercise the same loading path as real checkpoints.
"""

from __future__ import annotations

import json
import pathlib
import string

import numpy as np
from safetensors.numpy import save_file

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "a", "tent", "camping", "hiking", "stove", "knife", "kitchen", "chef", "pan", "book",
    "novel", "mystery", "detective", "coffee", "tea", "cafe", "resume", "naive", "hello", "world",
    "for", "and", "with", "of", "in", "is", "good", "great", "light", "weight", "steel",
]  # fmt: skip
CHARS = list(string.ascii_lowercase + string.digits + string.punctuation) + list("北京東欢迎你")


def build_vocab(cased: bool = False) -> list[str]:
    """Specials, whole words, single characters and their `##` continuations."""
    tokens = SPECIAL + WORDS + CHARS + ["##" + c for c in string.ascii_lowercase + string.digits]
    tokens += ["##ing", "##s", "##ed", "##er"]
    if cased:
        tokens += list(string.ascii_uppercase) + ["##" + c for c in string.ascii_uppercase]
        tokens += ["Hello", "World", "Tent"]
    return list(dict.fromkeys(tokens))


def write_checkpoint(
    directory: pathlib.Path,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    max_positions: int = 64,
    seed: int = 0,
    cased: bool = False,
    drop: tuple[str, ...] = (),
) -> pathlib.Path:
    """Writes config.json, vocab.txt, tokenizer_config.json and model.safetensors.

    Args:
      drop: Parameter names to leave out of the weights (to test incomplete checkpoints).
    """
    directory.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(cased)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": not cased}))
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": len(vocab),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_positions,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "pad_token_id": 0,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.normal(0.0, 0.2, size=shape).astype(np.float32)

    state = {
        "embeddings.word_embeddings.weight": normal(len(vocab), hidden),
        "embeddings.position_embeddings.weight": normal(max_positions, hidden),
        "embeddings.token_type_embeddings.weight": normal(2, hidden),
        "embeddings.LayerNorm.weight": 1.0 + normal(hidden),
        "embeddings.LayerNorm.bias": normal(hidden),
        "pooler.dense.weight": normal(hidden, hidden),
        "pooler.dense.bias": normal(hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            state[p + f"attention.self.{name}.weight"] = normal(hidden, hidden)
            state[p + f"attention.self.{name}.bias"] = normal(hidden)
        state[p + "attention.output.dense.weight"] = normal(hidden, hidden)
        state[p + "attention.output.dense.bias"] = normal(hidden)
        state[p + "attention.output.LayerNorm.weight"] = 1.0 + normal(hidden)
        state[p + "attention.output.LayerNorm.bias"] = normal(hidden)
        state[p + "intermediate.dense.weight"] = normal(intermediate, hidden)
        state[p + "intermediate.dense.bias"] = normal(intermediate)
        state[p + "output.dense.weight"] = normal(hidden, intermediate)
        state[p + "output.dense.bias"] = normal(hidden)
        state[p + "output.LayerNorm.weight"] = 1.0 + normal(hidden)
        state[p + "output.LayerNorm.bias"] = normal(hidden)
    save_file(
        {k: v for k, v in state.items() if k not in drop}, str(directory / "model.safetensors")
    )
    return directory
