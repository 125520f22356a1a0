"""Push, prune and rollback in a model base: atomic, the newest N kept, numbers never reused."""

import os
import shutil

import pytest

from pipeline.core.errors import DataError
from pipeline.core.manifest import write_json_atomic
from serving.versions import (
    ROLLED_BACK,
    next_version,
    prune_versions,
    push_version,
    rollback,
    versions,
)
from tests.serving.conftest import modes_under


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
        raise OSError("disk full")

    monkeypatch.setattr("serving.versions.shutil.copyfile", broken_copy)
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


def test_a_pushed_version_has_the_modes_of_the_umask_not_of_the_source(tmp_path, umask):
    source = _saved_model(tmp_path / "export", "m")
    write_json_atomic(os.path.join(source, "manifest.json"), {"version": 1})
    (tmp_path / "export" / "variables" / "variables.index").write_text("x")
    for path, mode in [("", 0o700), ("variables", 0o700), ("saved_model.pb", 0o600)]:
        os.chmod(os.path.join(source, path), mode)  # as an older release wrote them

    push_version(source, str(tmp_path / "base" / "recommender"), 3)

    modes = modes_under(tmp_path / "base" / "recommender" / "1")
    assert modes == {
        ".": 0o750,
        "variables": 0o750,
        "variables/variables.index": 0o640,
        "saved_model.pb": 0o640,
        "manifest.json": 0o640,
    }


def test_nothing_outside_the_model_base_is_moved_or_deleted(tmp_path):
    victim = tmp_path / "victim"  # the parent of the model base
    for version in (1, 2):
        _saved_model(victim / str(version), f"v{version}")
    base = victim / "models"
    base.mkdir()
    model_dir = os.path.join(base, "..")  # serving.model_name ".." before it was refused

    with pytest.raises(DataError, match=r"refusing to move or delete .*not inside"):
        rollback(model_dir)
    with pytest.raises(DataError, match="not inside"):
        prune_versions(model_dir, 1)
    with pytest.raises(DataError, match="not inside"):
        push_version(_saved_model(tmp_path / "export", "m"), model_dir, 1)
    assert sorted(os.listdir(victim)) == ["1", "2", "models"]
    assert (victim / "1" / "saved_model.pb").read_text() == "v1"


def test_a_version_linked_to_another_folder_is_neither_rolled_back_nor_pruned(tmp_path):
    model_dir = tmp_path / "recommender"
    _saved_model(model_dir / "1", "m1")
    elsewhere = _saved_model(tmp_path / "elsewhere", "not a served version")
    os.symlink(elsewhere, model_dir / "2")

    with pytest.raises(DataError, match=r"recommender/2'.* resolves to .*elsewhere"):
        rollback(str(model_dir))
    _saved_model(model_dir / "3", "m3")
    os.rename(model_dir / "1", model_dir / "4")  # the link is now the oldest: pruned first
    with pytest.raises(DataError, match="elsewhere"):
        prune_versions(str(model_dir), 1)
    assert sorted(os.listdir(model_dir)) == ["2", "3", "4"]
    assert sorted(os.listdir(tmp_path / "elsewhere")) == ["saved_model.pb", "variables"]
