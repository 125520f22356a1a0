"""The side files of the MovieLens layouts: the ml-1m plot file (movies_extrainfos.dat) decoded
and detected, then ml-1m plots and ml-latest tags joined into the items by whole preprocess runs,
with their counts reconciled."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest

from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.core.reader import read_all
from pipeline.orchestrate.run import STEP_SPECS
from pipeline.preprocess import preprocess, reasons
from pipeline.preprocess.formats import FileFormat, decode_record, iter_raw_records
from pipeline.preprocess.inputs import plan_inputs
from pipeline.preprocess.movielens import SideFile, detect_layout
from pipeline.preprocess.reasons import RecordError
from tests.conftest import REPO_ROOT
from tests.pipeline.preprocess.movielens_files import ML1M_MOVIES, decode, records

MOVIELENS_1M = REPO_ROOT.parent / "shared" / "data" / "movielens-1m-users1-2999"
needs_ml1m = pytest.mark.skipif(
    not (MOVIELENS_1M / "movies_extrainfos.dat").is_file(),
    reason=f"MovieLens 1M with plots (movies_extrainfos.dat) not found at {MOVIELENS_1M}",
)


# --- the ml-1m plot file (movies_extrainfos.dat) -------------------------------------------


def _plot_line(item_id: str, plot: str, title: str = "Toy Story") -> str:
    """One movies_extrainfos.dat line: the 11 `::`-separated fields of the MeLU file, CRLF-ended."""
    fields = [item_id, title, "1995", "G", "22 Nov 1995", "Animation", "John Lasseter"]
    return (
        "::".join([*fields, "Joss Whedon", "Tom Hanks, Tim Allen", plot, "https://p/x.jpg"])
        + "\r\n"
    )


def test_detect_ml1m_notices_the_plot_file(ml1m):
    (ml1m / "movies_extrainfos.dat").write_text(_plot_line("1", "Toys live."), newline="")
    layout = detect_layout(str(ml1m))
    assert layout.name == "ml-1m"
    assert layout.side_files == (
        SideFile("plot", str(ml1m / "movies_extrainfos.dat"), "lines", "movielens_dat_plot"),
    )


def test_plot_decoder_reads_a_crlf_line():
    raw = _plot_line("1", ' A boy\'s toys come to life: "Woody". ').encode()
    assert raw.endswith(b"\r\n")
    assert decode(raw, "movielens_dat_plot") == {
        "item_id": "1",
        "plot": 'A boy\'s toys come to life: "Woody".',
    }
    # As the lines reader hands it over: the LF already gone, the CR too.
    ((_, read),) = iter_raw_records(io.BytesIO(raw), FileFormat("lines", "movielens_dat_plot"))
    assert decode(read, "movielens_dat_plot")["plot"].endswith('Woody".')


def test_plot_decoder_keeps_utf8_text():
    raw = _plot_line("73", "Jean Valjean, forçat évadé…", "Misérables").encode()
    assert decode(raw, "movielens_dat_plot")["plot"] == "Jean Valjean, forçat évadé…"


@pytest.mark.parametrize("plot", ["N/A", "", "  "])
def test_plot_na_or_empty_is_an_empty_field(plot):
    with pytest.raises(RecordError) as info:
        decode(_plot_line("2", plot).encode(), "movielens_dat_plot")
    assert info.value.reason == reasons.EMPTY_FIELD
    assert info.value.field == "plot"
    assert "'plot'" in info.value.detail


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        (b"1::Toy Story::1995\r\n", 3),
        (_plot_line("1", "A plot :: with a separator inside").encode(), 12),
    ],
)
def test_plot_line_with_a_wrong_field_count_is_malformed_naming_the_file(raw, got):
    with pytest.raises(RecordError) as info:
        decode(raw, "movielens_dat_plot")
    assert info.value.reason == reasons.MALFORMED
    assert info.value.detail == f"movies_extrainfos.dat line: expected 11 fields, got {got}"


def test_plot_with_invalid_utf8_is_a_record_error_naming_the_field():
    raw = _plot_line("1", "Caf?").encode().replace(b"?", b"\xe9")
    with pytest.raises(RecordError) as info:
        decode(raw, "movielens_dat_plot")
    assert (info.value.reason, info.value.field) == (reasons.INVALID_UTF8, "plot")


# Movies 1, 2, 4 and 73; plots for 1 (twice), 2 (N/A), 73, an unknown 999 and one broken line.
PLOT_LINES = [
    _plot_line("1", "A boy's toys come to life."),
    _plot_line("2", "N/A", "Jumanji"),
    "\r\n",  # a blank line is skipped, not a record
    _plot_line("73", "Jean Valjean, forçat évadé.", "Les Misérables"),
    _plot_line("999", "A movie movies.dat does not have."),
    "5::Father of the Bride Part II::1995\r\n",
    _plot_line("1", "A later plot for Toy Story."),
]


@pytest.fixture
def ml1m_with_plots(tmp_path, ml1m):
    movies = ML1M_MOVIES + b"2::Jumanji (1995)::Adventure\n4::Waiting to Exhale (1995)::Drama\n"
    (ml1m / "movies.dat").write_bytes(movies)
    ratings = [(1, 1, 978300760), (1, 2, 978300761), (2, 73, 978300762), (2, 4, 978300900)]
    (ml1m / "ratings.dat").write_bytes(
        b"".join(f"{u}::{m}::4::{t}\n".encode() for u, m, t in ratings)
    )
    (ml1m / "movies_extrainfos.dat").write_bytes("".join(PLOT_LINES).encode())
    config = load_config(
        None,
        [
            f"work_dir={tmp_path / 'work'}",
            "data.format=movielens",
            f"data.path={ml1m}",
            "preprocess.split.cutoff=978300800",
            "beam.direct_num_workers=1",
            "beam.direct_running_mode=in_memory",
        ],
    )
    return ml1m, config


def test_ml1m_preprocess_joins_plots_into_description_and_text(ml1m_with_plots):
    data, config = ml1m_with_plots
    manifest = preprocess.run(config)
    out = config.step_dir("preprocess")
    items = {r["item_id"]: r for r in read_all(schema.output_pattern(out, "items"), schema.ITEMS)}
    assert set(items) == {"1", "2", "4", "73"}
    assert items["1"]["description"] == "A boy's toys come to life."  # the first plot wins
    assert items["1"]["text"] == (
        "Toy Story (1995). Categories: Animation, Children's, Comedy. A boy's toys come to life."
    )
    assert items["73"]["description"] == "Jean Valjean, forçat évadé."
    assert items["73"]["title"] == "Misérables, Les (1995)"  # movies.dat stays latin-1
    assert (items["2"]["description"], items["4"]["description"]) == ("", "")
    assert items["2"]["text"] == "Jumanji (1995). Categories: Adventure."

    with open(schema.output_pattern(out, "dead_letters").replace("*", "dead_letters")) as f:
        dead = [json.loads(line) for line in f]
    plots = {d["line"]: d for d in dead if d["input"] == "plots"}
    assert {line: d["reason"] for line, d in plots.items()} == {
        2: reasons.EMPTY_FIELD,
        5: reasons.UNKNOWN_ITEM,
        6: reasons.MALFORMED,
        7: reasons.DUPLICATE_ITEM,
    }
    assert plots[2]["field"] == "plot"
    assert "movies_extrainfos.dat" in plots[6]["detail"]
    assert "movies_extrainfos.dat:1 is kept" in plots[7]["detail"]
    assert all(d["source"] == str(data / "movies_extrainfos.dat") for d in plots.values())

    assert manifest["plot_counts"] == {
        "read": 6,
        "kept": 2,
        "rejected": 4,
        "rejected_by_reason": {
            reasons.DUPLICATE_ITEM: 1,
            reasons.EMPTY_FIELD: 1,
            reasons.MALFORMED: 1,
            reasons.UNKNOWN_ITEM: 1,
        },
        "skipped_lines": 1,
    }
    assert manifest["tag_counts"] == {}
    assert (manifest["item_counts"]["read"], manifest["item_counts"]["kept"]) == (4, 4)
    assert manifest["counts"]["kept"] == 4
    (plot_file,) = manifest["inputs"]["plots"]
    assert plot_file["path"] == str(data / "movies_extrainfos.dat") and plot_file["sha256"]


def test_the_plot_file_is_a_preprocess_input_for_recsys_run(ml1m_with_plots):
    data, config = ml1m_with_plots
    assert str(data / "movies_extrainfos.dat") in STEP_SPECS["preprocess"].inputs(config)
    plan = plan_inputs(config)
    assert plan.files_of("plot") == [str(data / "movies_extrainfos.dat")]
    assert plan.files_of("tag") == []


def test_ml_latest_preprocess_joins_tags_and_reconciles_their_counts(tmp_path, ml_latest):
    (ml_latest / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\n1,1,4.0,100\n1,73,3.0,200\n2,1,5.0,300\n"
    )
    (ml_latest / "tags.csv").write_bytes(
        b"userId,movieId,tag,timestamp\n2,1,Pixar,1\n3,1,pixar,2\n2,60756,funny,3\n2,1, ,4\n"
    )
    config = load_config(
        None,
        [
            f"work_dir={tmp_path / 'work'}",
            "data.format=movielens",
            f"data.path={ml_latest}",
            "preprocess.split.cutoff=250",
            "beam.direct_num_workers=1",
            "beam.direct_running_mode=in_memory",
        ],
    )
    manifest = preprocess.run(config)
    items = {
        r["item_id"]: r
        for r in read_all(
            schema.output_pattern(config.step_dir("preprocess"), "items"), schema.ITEMS
        )
    }
    assert items["1"]["text"].endswith("Tags: pixar.")
    assert manifest["tag_counts"] == {
        "read": 4,
        "kept": 2,
        "rejected": 2,
        "rejected_by_reason": {reasons.EMPTY_FIELD: 1, reasons.UNKNOWN_ITEM: 1},
        "skipped_lines": 1,  # the header
    }
    assert manifest["plot_counts"] == {}
    assert [f["path"] for f in manifest["inputs"]["tags"]] == [str(ml_latest / "tags.csv")]


@needs_ml1m
def test_real_ml1m_plot_file_decodes_every_line():
    layout = detect_layout(str(MOVIELENS_1M))
    (plots,) = layout.side_files
    assert (layout.name, plots.kind) == ("ml-1m", "plot")
    fmt = FileFormat(plots.reader, plots.decoder)
    outcomes: Counter = Counter()
    plot_ids = []
    with open(plots.path, "rb") as f:
        for _, raw in iter_raw_records(f, fmt):
            try:
                plot_ids.append(decode_record(raw, fmt)["item_id"])
                outcomes["plot"] += 1
            except RecordError as e:
                outcomes[e.reason] += 1
    assert sum(outcomes.values()) == 3881  # every line is a record: no blank line, no error
    assert outcomes == {"plot": 3845, reasons.EMPTY_FIELD: 36}
    assert len(set(plot_ids)) == len(plot_ids)
    movies = records(layout.items_path, layout.items_reader, layout.items_decoder)
    assert len(movies) == 3883
    assert set(plot_ids) <= {m["item_id"] for m in movies}
