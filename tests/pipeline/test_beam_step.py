"""What every Beam step shares: the runner a job runs on, and a step's staged, published folder."""

import os
import tempfile

import apache_beam as beam
import pytest
from apache_beam.runners.portability import prism_runner

from pipeline.beam_step import new_pipeline, pipeline_options, run_step, write_lines
from pipeline.config import load_config


@pytest.fixture
def no_prism(monkeypatch):
    """Records every attempt to run a job on Prism or to download its binary."""
    attempts = []

    def refuse(name):
        def record(*args, **kwargs):
            attempts.append(name)
            raise RuntimeError(f"{name} was called")

        return record

    monkeypatch.setattr(
        prism_runner.PrismRunner, "run_pipeline", refuse("PrismRunner.run_pipeline")
    )
    monkeypatch.setattr(prism_runner, "urlopen", refuse("urlopen"))
    return attempts


@pytest.fixture
def unrun_pipelines_tempdir(tmp_path, monkeypatch):
    """A pipeline makes a temporary folder when built and deletes it when run: the ones these
    tests build and never run make theirs under the test's own folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _pids(config, step, options):
    """Runs a step whose job writes the process ids its elements were handled in."""

    def build(p, out_dir):
        pids = (
            p
            | beam.Create(range(40))
            | beam.Reshuffle()
            | beam.Map(lambda _: os.getpid())
            | beam.Distinct()
            | beam.Map(str)
            | beam.combiners.ToList()
        )
        write_lines(pids, os.path.join(out_dir, "pids.txt"), "Pids")

    def finish(out_dir):
        with open(os.path.join(out_dir, "pids.txt")) as f:
            return {"pids": sorted(int(line) for line in f.read().split())}

    return run_step(config, step, options, build, finish)


def test_a_direct_runner_step_never_tries_prism_or_a_download(tmp_path, no_prism):
    config = load_config(None, [f"work_dir={tmp_path}", "beam.direct_running_mode=in_memory"])
    options = pipeline_options(config, direct_num_workers=1)

    manifest = _pids(config, "probe", options)

    assert manifest == {"pids": [os.getpid()]}
    assert no_prism == []
    with open(tmp_path / "probe" / "pids.txt") as f:
        assert f.read().split() == [str(os.getpid())]


def test_the_configured_running_mode_and_workers_are_honoured(tmp_path, no_prism):
    config = load_config(None, [f"work_dir={tmp_path}"])
    options = pipeline_options(config, direct_num_workers=2, direct_running_mode="multi_processing")

    manifest = _pids(config, "probe", options)

    assert os.getpid() not in manifest["pids"]
    assert 1 <= len(manifest["pids"]) <= 2
    assert no_prism == []


@pytest.mark.parametrize("name", ["DirectRunner", "direct", "SwitchingDirectRunner"])
def test_every_name_of_the_direct_runner_runs_on_the_fn_api_runner(name, unrun_pipelines_tempdir):
    options = pipeline_options(load_config(None, []), [f"--runner={name}"])

    assert type(new_pipeline(options).runner).__name__ == "FnApiRunner"


def test_other_runners_are_left_to_beam(unrun_pipelines_tempdir):
    config = load_config(None, [])
    for name in ("BundleBasedDirectRunner", "PrismRunner"):
        options = pipeline_options(config, [f"--runner={name}"])
        assert type(new_pipeline(options).runner).__name__ == name
