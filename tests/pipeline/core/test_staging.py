"""Staging folders of killed runs: removed by the next writer, and nothing else is."""

import os

import pytest

from pipeline.core.config import config_from_dict, load_config
from pipeline.core.errors import DataError
from pipeline.core.manifest import publish_dir
from pipeline.core.staging import old_result_dir, staging_dir, sweep_staging
from pipeline.orchestrate.cli import main
from pipeline.orchestrate.run import run

STALE = [
    "preprocess.tmp-0123abcd",
    "embeddings.tmp-89abcdef",
    "model/trained.tmp-deadbeef",
    "export/recommender/.tmp-4-0123abcd",
    "serving/models/recommender/.tmp-push-3-0123abcd",
    "serving/models/recommender/.tmp-remove-1-fedcba98",
]
KEPT = [
    "preprocess",
    "preprocess.old-0123abc",  # look-alikes of a previous result moved aside: not ours
    "preprocess.old-0123ABCD",
    "preprocess.old-0123abcd.d",
    ".hidden.old-0123abcd",
    "export/recommender/3.old-0123abcd",  # publish_dir never runs in a model base
    "model/trained",
    "export/recommender/3",
    "export/recommender/.tmp-notours",
    "serving/models/recommender/2",
    "serving/models/recommender/.rolled-back/1-20261124",
    "notes.tmp-0123abcd.d/inside.tmp-0123abcd",
    ".hidden.tmp-0123abcd",
]


def _layout(work):
    for name in STALE + KEPT:
        os.makedirs(work / name)
        (work / name / "file").write_text("x")
    (work / "report.tmp-0123abcd").write_text("a file, not a staging folder")


def _remaining(work):
    return {
        os.path.relpath(root, work)
        for root, _dirs, files in os.walk(work)
        if "file" in files or root == str(work)
    }


def test_sweep_removes_exactly_the_staging_folders_of_killed_runs(tmp_path, capsys):
    work = tmp_path / "work"
    _layout(work)
    config = load_config(None, [f"work_dir={work}"])

    removed = sweep_staging(config)

    assert sorted(removed) == sorted(str(work / name) for name in STALE)
    assert _remaining(work) == {".", *KEPT}
    assert (work / "report.tmp-0123abcd").is_file()
    said = capsys.readouterr().err
    for name in STALE:
        assert f"removing {work / name}: the staging folder of a run that was killed" in said
    assert sweep_staging(config) == []


def test_a_step_command_sweeps_before_it_runs(tmp_path):
    work = tmp_path / "work"
    _layout(work)
    common = ["--set", f"work_dir={work}", "--set", "sample_data.n_users=20"]

    assert main(["sample-data", *common, "--set", "sample_data.n_items=30"]) == 0

    assert not any((work / name).exists() for name in STALE)
    assert (work / "sample_data" / "events.jsonl").is_file()


def test_recsys_run_sweeps_before_its_first_step(tmp_path):
    work = tmp_path / "work"
    _layout(work)
    seen = []

    def execute(step):
        seen.append((step, [name for name in STALE if (work / name).exists()]))

    run(load_config(None, [f"work_dir={work}"]), execute, steps=["validate"])

    assert seen == [("validate", [])]


def test_the_sweep_touches_nothing_outside_the_model_bases(tmp_path):
    work = tmp_path / "work"
    outside = work / "serving" / ".tmp-push-3-0123abcd"  # `<model_base>/..`: not ours
    outside.mkdir(parents=True)
    (work / "serving" / "models").mkdir()
    config = config_from_dict({"work_dir": str(work), "serving": {"model_name": ".."}})

    with pytest.raises(DataError, match=r"refusing to move or delete .*/\.\.': it resolves to"):
        sweep_staging(config)
    assert outside.is_dir()


def test_a_previous_result_moved_aside_is_deleted_when_the_new_one_is_in_place(tmp_path, capsys):
    work = tmp_path / "work"
    _layout(work)
    old = [work / "embeddings.old-0123abcd", work / "model" / "trained.old-89abcdef"]
    for path in old:
        path.mkdir()
        (path / "file").write_text("previous")
    (work / "embeddings").mkdir()

    removed = sweep_staging(load_config(None, [f"work_dir={work}"]))

    assert sorted(removed) == sorted([str(work / name) for name in STALE] + list(map(str, old)))
    assert not any(path.exists() for path in old)
    assert _remaining(work) == {".", *KEPT}
    said = capsys.readouterr().err
    assert f"removing {old[0]}: the previous result that a killed run had moved aside" in said


def test_a_kill_between_the_two_renames_of_a_publish_loses_nothing(tmp_path, capsys):
    # publish_dir renames `embeddings` aside, then the staging folder into place; a kill
    # between the two leaves the moved-aside folder as the only copy of the published result.
    work = tmp_path / "work"
    final = work / "embeddings"
    final.mkdir(parents=True)
    (final / "file").write_text("published")
    aside = old_result_dir(str(final))
    os.rename(final, aside)
    staging = staging_dir(str(final))
    os.makedirs(staging)

    removed = sweep_staging(load_config(None, [f"work_dir={work}"]))

    assert removed == [staging]
    assert (final / "file").read_text() == "published"
    assert sorted(os.listdir(work)) == ["embeddings"]
    assert f"restoring {final} from {aside}" in capsys.readouterr().err


def test_publish_dir_moves_the_previous_result_aside_under_the_swept_name(tmp_path, monkeypatch):
    final, staging = tmp_path / "embeddings", tmp_path / "new"
    final.mkdir()
    staging.mkdir()
    seen = []
    monkeypatch.setattr("shutil.rmtree", lambda path, **_: seen.append(os.path.basename(path)))

    publish_dir(str(staging), str(final))

    assert len(seen) == 1 and seen[0].startswith("embeddings.old-")
    assert sweep_staging(load_config(None, [f"work_dir={tmp_path}"])) == [str(tmp_path / seen[0])]
