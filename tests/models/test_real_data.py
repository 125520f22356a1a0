"""A real-data smoke test: a few thousand ML-1M ratings with plot text through preprocess →
embed-items → train (one epoch) → evaluate, with every baseline.

The synthetic demo data agree with themselves by construction; this run checks that the real
path works end to end: the MovieLens adapter and its plot join, the validation slice, the
exclusion of seen items and every baseline on the same queries. Skipped when the shared data
folder is absent (it is never copied into the repository)."""

import json
import os

import pytest

from models import evaluate, train
from pipeline.core.config import load_config
from pipeline.embed import embed_items
from pipeline.preprocess import preprocess
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out

ML1M = REPO_ROOT.parent / "shared" / "data" / "movielens-1m-users1-2999"
RATINGS = 4000  # the first ratings of the file: its first users, complete


@pytest.mark.skipif(
    not (ML1M / "ratings.dat").is_file(),
    reason=f"the real data set is not at {ML1M} (../shared/data/movielens-1m-users1-2999)",
)
def test_a_slice_of_ml1m_runs_preprocess_to_evaluate_with_every_baseline(tmp_path):
    from tests.pipeline.embed.tiny_bert import write_checkpoint

    data = tmp_path / "ml1m"
    data.mkdir()
    with open(ML1M / "ratings.dat", "rb") as source, open(data / "ratings.dat", "wb") as out:
        for _ in range(RATINGS):
            out.write(source.readline())
    for name in ("movies.dat", "movies_extrainfos.dat"):
        os.symlink(ML1M / name, data / name)
    checkpoint = write_checkpoint(tmp_path / "tiny")
    config = load_config(
        str(REPO_ROOT / "configs" / "movielens1m.yaml"),
        [
            f"data.path={data}",
            f"work_dir={tmp_path / 'work'}",
            f"text.checkpoint={checkpoint}",  # a tiny BERT: this checks the path, not quality
            "text.max_length=32",
            "beam.direct_num_workers=1",
            "beam.direct_running_mode=in_memory",
            "model.embedding_dim=16",
            "train.epochs=1",
            "train.batch_size=256",
        ],
    )
    pre = preprocess.run(config)
    counts = pre["counts"]
    assert counts["read"] == RATINGS == counts["kept"]
    assert counts["train"] and counts["validation"] and counts["eval"]
    assert counts["train"] + counts["validation"] + counts["eval"] == RATINGS
    assert pre["plot_counts"]["kept"] > 3800  # the plots joined into item descriptions
    embed_items.run(config)
    train.train(config)
    out = evaluate.evaluate(config)
    assert set(out["baselines"]) == set(evaluate.BASELINES)
    assert out["exclude_seen"] and out["excluded_per_query"] > 20  # users with long pasts
    assert out["eval_events"] == counts["eval"]
    for values in (out, *out["baselines"].values()):
        assert 0 <= values["recall@50"] <= values["recall@100"] <= 1
        assert 0 <= values["user_ndcg@10"] <= 1
    # what a person reads: the metrics file and the report with every system
    folder = config.step_dir(evaluate.STEP)
    with open(os.path.join(folder, "metrics.json")) as f:
        assert (
            json.load(f)["baselines"]["ease"]["recall@50"] == out["baselines"]["ease"]["recall@50"]
        )
    with open(os.path.join(folder, "report.md")) as f:
        report = f.read()
    assert all(name in report for name in evaluate.BASELINES)
