"""Fixtures shared by the model tests: a small preprocessed and embedded data set."""

import pytest

from pipeline import embed_items, preprocess
from pipeline.config import load_config
from pipeline.sample_data import generate, write_sample_data
from tests.models.tiny_bert import write_checkpoint


def small_config(work, *overrides):
    return load_config(
        None,
        [
            f"work_dir={work}",
            "sample_data.n_users=40",
            "sample_data.n_items=60",
            "data.items.extra_text_fields=[brand]",
            "beam.direct_num_workers=1",
            "beam.direct_running_mode=in_memory",
            "model.embedding_dim=8",
            "model.deep_layers=[8]",
            "train.batch_size=64",
            "train.shuffle_buffer=1000",
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
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
