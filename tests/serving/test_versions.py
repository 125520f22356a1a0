"""Push, prune and rollback in a model base: atomic, the newest N kept, numbers never reused."""

import os
import shutil

import pytest

from pipeline.errors import DataError
from serving.versions import (
    ROLLED_BACK,
    next_version,
    prune_versions,
    push_version,
    rollback,
    versions,
)


def _saved_model(path, marker):
    os.makedirs(path / "variables", exist_ok=True)
    (path / "saved_model.pb").write_text(marker)
    return str(path)


def test_push_adds_the_next_version_and_keeps_the_newest_n(tmp_path):
    model_dir = str(tmp_path / "base" / "recommender")
    for i in range(1, 5):
        assert push_version(_saved_model(tmp_path / f"export{i}", f"m{i}"), model_dir, 3) == i
    assert versions(model_dir) == [2, 3, 4]
    with open(os.path.join(model_dir, "4", "saved_model.pb")) as f:
        assert f.read() == "m4"
    assert not [n for n in os.listdir(model_dir) if n.startswith(".tmp")]


def test_a_failed_copy_leaves_no_visible_version(tmp_path, monkeypatch):
    model_dir = str(tmp_path / "recommender")
    push_version(_saved_model(tmp_path / "good", "good"), model_dir, 3)

    def broken_copy(src, dst):
        os.makedirs(dst)
        raise OSError("disk full")

    monkeypatch.setattr("serving.versions.shutil.copytree", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        push_version(_saved_model(tmp_path / "bad", "bad"), model_dir, 3)
    assert versions(model_dir) == [1]
    assert sorted(os.listdir(model_dir)) == ["1"]


def test_rollback_serves_the_previous_version_and_numbers_are_not_reused(tmp_path):
    model_dir = str(tmp_path / "recommender")
    for i in (1, 2):
        push_version(_saved_model(tmp_path / f"e{i}", f"m{i}"), model_dir, 3)
    assert rollback(model_dir) == (2, 1)
    assert versions(model_dir) == [1]
    assert os.listdir(os.path.join(model_dir, ROLLED_BACK))[0].startswith("2-")
    assert push_version(_saved_model(tmp_path / "e3", "m3"), model_dir, 3) == 3
    with pytest.raises(DataError, match="previous version"):
        rollback(str(tmp_path / "empty"))


def test_push_refuses_a_folder_without_a_saved_model(tmp_path):
    with pytest.raises(DataError, match=r"saved_model\.pb"):
        push_version(str(tmp_path), str(tmp_path / "base"), 3)


def test_prune_removes_all_but_the_newest_n_and_numbers_go_on(tmp_path):
    model_dir = tmp_path / "recommender"
    for version in (2, 5, 9, 10):
        _saved_model(model_dir / str(version), f"m{version}")
    (model_dir / "notes").mkdir()  # not a version: left alone

    assert prune_versions(str(model_dir), 2) == [2, 5]
    assert versions(str(model_dir)) == [9, 10]
    assert sorted(os.listdir(model_dir)) == ["10", "9", "notes"]
    assert next_version(str(model_dir)) == 11
    assert prune_versions(str(model_dir), 2) == []
    with pytest.raises(DataError, match="keep must be at least 1"):
        prune_versions(str(model_dir), 0)


def test_a_version_being_pruned_is_never_seen_partly_deleted(tmp_path, monkeypatch):
    model_dir = tmp_path / "recommender"
    for version in (1, 2):
        _saved_model(model_dir / str(version), f"m{version}")
    seen = []
    delete = shutil.rmtree

    def watched_rmtree(path, ignore_errors=False):
        seen.append(versions(str(model_dir)))  # what a server polling now would list
        delete(path, ignore_errors=ignore_errors)

    monkeypatch.setattr("serving.versions.shutil.rmtree", watched_rmtree)
    assert prune_versions(str(model_dir), 1) == [1]
    assert seen == [[2]]
    assert sorted(os.listdir(model_dir)) == ["2"]
