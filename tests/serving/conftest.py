"""A trained and exported tiny recommender, shared by the serving tests."""

import shutil

import pytest

from tests.models.conftest import small_config


@pytest.fixture(scope="session")
def exported(prepared, tmp_path_factory):
    """(config, version folder) of an export of a model trained for two epochs on the tiny
    data set, with the tiny BERT as the query encoder."""
    from models.train import train
    from serving.export import export

    work, checkpoint = prepared
    copy = tmp_path_factory.mktemp("serving") / "work"
    for step in ("preprocess", "embeddings"):
        shutil.copytree(work / step, copy / step)
    config = small_config(
        copy,
        f"text.checkpoint={checkpoint}",
        "text.max_length=16",
        "train.epochs=2",
        "serving.num_candidates=30",
        "serving.max_k=20",
        "serving.default_k=5",
    )
    train(config)
    manifest = export(config)
    base = config.serving.export_path(config.work_dir)
    return config, f"{base}/{config.serving.model_name}/{manifest['version']}"
