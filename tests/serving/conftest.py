"""Shared by the serving tests: a trained and exported tiny recommender, and a known umask."""

import os
import shutil
import stat

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
        # The sequence encoder, so the op check, XLA warmup and signatures cover its graph.
        "model.history_pooling=self_attention",
    )
    train(config)
    manifest = export(config)
    base = config.serving.export_path(config.work_dir)
    return config, f"{base}/{config.serving.model_name}/{manifest['version']}"


UMASK = 0o027  # not the usual 022, so a mode that merely happens to be 644 does not pass


@pytest.fixture
def umask():
    """Runs the test under `UMASK` (restored after): new files are 0o640, folders 0o750."""
    old = os.umask(UMASK)
    yield UMASK
    os.umask(old)


def modes_under(folder) -> dict[str, int]:
    """Relative path → permission bits of `folder` ("."), everything below it."""
    modes = {".": stat.S_IMODE(os.stat(folder).st_mode)}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            modes[os.path.relpath(path, folder)] = stat.S_IMODE(os.stat(path).st_mode)
    return modes
