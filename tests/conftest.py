"""Test-wide settings (Keras 2 for TFRS, quiet TensorFlow, repository paths), how a parallel run
splits the suite, the small preprocessed and embedded data set that the model and serving
tests share, and the tiny recommender trained and exported from it (`exported`)."""

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import tempfile

import pytest

import pipeline.core.keras2  # noqa: F401  (before any test module imports TensorFlow)

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


# ----------------------------------------------------------------------------- parallel runs
#
# pyproject.toml runs the suite on pytest-xdist workers with `--dist loadscope`, which the
# scheduler below refines: each work unit runs whole, in file order, on one worker.
#
# * A test module is a unit: its module fixtures are built once, and the modules whose tests
#   build on each other's state (tests/pipeline/orchestrate/test_run.py) keep their order.
# * The modules with a test of the `exported` model (below) are one unit: the
#   model is trained and exported once, and the exports that some of those tests make into its
#   work directory never meet another worker's.
# * A test marked `@pytest.mark.xdist_group("name")` belongs to the unit "name".
#
# The workers, which collect the tests, write each module's unit to a file that the controller's
# scheduler reads (pytest-xdist's own loadgroup cannot rename tests under pytest 9.2).

# Units that take much longer than the rest start first, so that no worker is left with one of
# them at the end (a unit's name: its group, or the module's path).
LONG_UNITS = (
    "tests/pipeline/orchestrate/test_fault_suite.py",
    "tests/pipeline/orchestrate/test_airflow_dag_pipeline.py",
    "tests/pipeline/orchestrate/test_airflow_dag.py",
    "exported",
    "tests/pipeline/orchestrate/test_run.py",
    "tests/models/test_real_data.py",
    "tests/models/test_distributed.py",
)
_UNITS_FILE = "recsys_units_file"


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


def _units(items) -> dict:
    """Each test's unit: its xdist_group, else "exported" or its module."""
    exported = {_module(item.nodeid) for item in items if "exported" in item.fixturenames}
    units = {}
    for item in items:
        marks = list(item.iter_markers("xdist_group"))
        if marks:
            units[item.nodeid] = marks[0].args[0] if marks[0].args else marks[0].kwargs["name"]
        else:
            module = _module(item.nodeid)
            units[item.nodeid] = "exported" if module in exported else module
    return units


def pytest_collection_modifyitems(config, items):
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or _UNITS_FILE not in workerinput:
        return  # a serial run: file order
    units = _units(items)
    rank = {unit: i for i, unit in enumerate(LONG_UNITS)}
    items.sort(key=lambda item: rank.get(units[item.nodeid], len(rank)))  # stable
    path = pathlib.Path(workerinput[_UNITS_FILE])
    staging = path.with_name(f"{path.name}.{workerinput['workerid']}")
    staging.write_text(json.dumps(units))
    os.replace(staging, path)  # every worker writes the same


_UNITS_DIR = pytest.StashKey[str]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """(controller) Where the workers write the units."""
    if _UNITS_DIR not in node.config.stash:
        node.config.stash[_UNITS_DIR] = tempfile.mkdtemp(prefix="recsys-test-units-")
    node.workerinput[_UNITS_FILE] = os.path.join(node.config.stash[_UNITS_DIR], "units.json")


def pytest_unconfigure(config):
    if _UNITS_DIR in config.stash:
        shutil.rmtree(config.stash[_UNITS_DIR], ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """(controller) `--dist loadscope` with the units above as its scopes."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        units = None

        def _split_scope(self, nodeid):
            if self.units is None:  # read once every worker has collected
                try:
                    path = os.path.join(config.stash[_UNITS_DIR], "units.json")
                    with open(path, encoding="utf-8") as f:
                        self.units = json.load(f)
                except (KeyError, OSError):
                    self.units = {}  # by module, as loadscope does
            return self.units.get(nodeid) or _module(nodeid)

    return UnitScheduling(config, log)


def shared_tmp_path(tmp_path_factory) -> pathlib.Path:
    """The temporary folder of this test run that every xdist worker sees (pytest-N), or the
    run's own one (also pytest-N) when it is not parallel."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _locked(path: pathlib.Path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_once(tmp_path_factory, name: str, build) -> pathlib.Path:
    """The folder `name` of this test run, made by `build(folder)` in the first worker that asks
    for it; the others wait for it and reuse it. For read-only fixtures only: a test that writes
    must copy it."""
    root = shared_tmp_path(tmp_path_factory)
    folder = root / name
    done = root / f"{name}.done"
    with _locked(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted build
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


# ----------------------------------------------------------------------------- shared data


def _prepare(folder: pathlib.Path):
    from pipeline.embed import embed_items
    from pipeline.preprocess import preprocess
    from pipeline.sample_data import generate, write_sample_data
    from tests.models.conftest import small_config
    from tests.pipeline.embed.tiny_bert import write_checkpoint

    checkpoint = write_checkpoint(folder / "tiny")
    config = small_config(folder / "work", f"text.checkpoint={checkpoint}", "text.max_length=16")
    write_sample_data(generate(config.sample_data), config.data_path(), "jsonl")
    preprocess.run(config)
    embed_items.run(config)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A tiny BERT checkpoint and a work directory with preprocess and embeddings outputs, built
    once per test run and shared by the workers: read it, never write to it (`workspace` gives
    a private copy)."""
    folder = build_once(tmp_path_factory, "prepared", _prepare)
    return folder / "work", folder / "tiny"


@pytest.fixture
def workspace(prepared, tmp_path):
    """A private copy of the prepared work directory (so training runs do not meet)."""
    work, checkpoint = prepared
    copy = tmp_path / "work"
    for step in ("preprocess", "embeddings"):
        shutil.copytree(work / step, copy / step)
    return copy, checkpoint


@pytest.fixture(scope="session")
def exported(prepared, tmp_path_factory):
    """(config, version folder) of an export of a model trained for two epochs on the tiny
    data set, with the tiny BERT as the query encoder."""
    from models.train import train
    from serving.export import export
    from tests.models.conftest import small_config

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
