"""Test-wide settings (Keras 2 for TFRS, quiet TensorFlow, repository paths) and the small
preprocessed and embedded data set that the model and serving tests share."""

import os
import pathlib

import pytest

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
MOVIELENS_100K = REPO_ROOT.parent / "shared" / "data" / "movielens-100k"


def run_fresh_python(script: str, *args: str):
    """Runs `script` in a new interpreter (nothing imported or registered yet) and returns the
    JSON object it prints last; fails the test with its stderr when it fails."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A tiny BERT checkpoint and a work directory with preprocess and embeddings outputs."""
    from pipeline import embed_items, preprocess
    from pipeline.sample_data import generate, write_sample_data
    from tests.models.conftest import small_config
    from tests.models.tiny_bert import write_checkpoint

    work = tmp_path_factory.mktemp("train") / "work"
    checkpoint = write_checkpoint(work.parent / "tiny")
    config = small_config(work, f"text.checkpoint={checkpoint}", "text.max_length=16")
    write_sample_data(generate(config.sample_data), config.data_path(), "jsonl")
    preprocess.run(config)
    embed_items.run(config)
    return work, checkpoint


@pytest.fixture
def workspace(prepared, tmp_path):
    """A private copy of the prepared work directory (so training runs do not meet)."""
    import shutil

    work, checkpoint = prepared
    copy = tmp_path / "work"
    for step in ("preprocess", "embeddings"):
        shutil.copytree(work / step, copy / step)
    return copy, checkpoint
