"""Tests of MovieLens layout detection, the per-layout decoders, and the ml-1m plot file."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest

from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.core.errors import DataError
from pipeline.core.reader import read_all
from pipeline.orchestrate.run import STEP_SPECS
from pipeline.preprocess import preprocess, reasons
from pipeline.preprocess.formats import FileFormat, decode_record, iter_raw_records
from pipeline.preprocess.inputs import plan_inputs
from pipeline.preprocess.movielens import Layout, SideFile, detect_layout
from pipeline.preprocess.reasons import RecordError
from tests.conftest import MOVIELENS_100K, REPO_ROOT

MOVIELENS_1M = REPO_ROOT.parent / "shared" / "data" / "movielens-1m-users1-2999"

needs_ml100k = pytest.mark.skipif(
    not MOVIELENS_100K.is_dir(), reason=f"MovieLens 100K not found at {MOVIELENS_100K}"
)
needs_ml1m = pytest.mark.skipif(
    not (MOVIELENS_1M / "movies_extrainfos.dat").is_file(),
    reason=f"MovieLens 1M with plots (movies_extrainfos.dat) not found at {MOVIELENS_1M}",
)

ML1M_RATINGS = b"1::1193::5::978300760\n1::661::3::978302109\n"
ML1M_MOVIES = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n73::Misérables, Les (1995)::Drama|Musical\n"
).encode("latin-1")
LATEST_RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
LATEST_MOVIES = (
    "movieId,title,genres\n"
    '1,"Toy Story (1995)",Adventure|Animation|Children|Comedy|Fantasy\n'
    '73,"Misérables, Les (1995)",Drama|War\n'
    "114335,La cravate (1957),(no genres listed)\n"
).encode()
LATEST_TAGS = b"userId,movieId,tag,timestamp\n2,60756,  funny ,1445714994\n"


def records(path: str, reader: str, decoder: str, options=()) -> list[dict]:
    fmt = FileFormat(reader, decoder, options=options)
    with open(path, "rb") as f:
        return [decode_record(raw, fmt) for _, raw in iter_raw_records(f, fmt) if raw is not None]


def decode(raw, decoder: str, reader: str = "lines", options=()) -> dict:
    return decode_record(raw, FileFormat(reader, decoder, options=options))


@pytest.fixture
def ml1m(tmp_path):
    (tmp_path / "ratings.dat").write_bytes(ML1M_RATINGS)
    (tmp_path / "movies.dat").write_bytes(ML1M_MOVIES)
    (tmp_path / "users.dat").write_bytes(b"1::F::1::10::48067\n")
    return tmp_path


@pytest.fixture
def ml_latest(tmp_path):
    (tmp_path / "ratings.csv").write_bytes(LATEST_RATINGS)
    (tmp_path / "movies.csv").write_bytes(LATEST_MOVIES)
    (tmp_path / "tags.csv").write_bytes(LATEST_TAGS)
    return tmp_path


# --- detect_layout -----------------------------------------------------------------------------


@needs_ml100k
def test_detect_real_ml100k():
    layout = detect_layout(str(MOVIELENS_100K))
    assert layout.name == "ml-100k"
    assert layout.events_path == str(MOVIELENS_100K / "u.data")
    assert layout.items_path == str(MOVIELENS_100K / "u.item")
    assert (layout.events_reader, layout.items_reader) == ("lines", "lines")
    assert layout.side_files == ()
    assert len(layout.genres) == 19
    assert layout.genres[:4] == ("unknown", "Action", "Adventure", "Animation")
    assert layout.genres[-1] == "Western"


@needs_ml100k
def test_real_ml100k_first_movie_and_rating():
    layout = detect_layout(str(MOVIELENS_100K))
    options = (("genres", layout.genres),)
    movies = records(layout.items_path, layout.items_reader, layout.items_decoder, options)
    assert len(movies) == 1682
    assert movies[0] == {
        "item_id": "1",
        "title": "Toy Story (1995)",
        "description": "",
        "categories": ["Animation", "Children's", "Comedy"],
    }
    with open(layout.events_path, "rb") as f:
        _, first = next(iter_raw_records(f, FileFormat("lines", layout.events_decoder)))
    assert decode(first, layout.events_decoder) == {
        "user_id": "196",
        "item_id": "242",
        "rating": "3",
        "timestamp": "881250949",
    }


def test_ml100k_genres_come_from_u_genre_in_index_order(tmp_path):
    (tmp_path / "u.data").write_bytes(b"1\t2\t3\t4\n")
    (tmp_path / "u.item").write_bytes(b"")
    (tmp_path / "u.genre").write_bytes(b"Drama|1\nunknown|0\nSci-Fi|2\n\n")
    layout = detect_layout(str(tmp_path))
    assert layout.name == "ml-100k"
    assert layout.genres == ("unknown", "Drama", "Sci-Fi")
    raw = "7|Amélie (2001)|01-Jan-2001||http://x|0|1|1".encode("latin-1")
    assert decode(raw, layout.items_decoder, options=(("genres", layout.genres),)) == {
        "item_id": "7",
        "title": "Amélie (2001)",
        "description": "",
        "categories": ["Drama", "Sci-Fi"],
    }


def test_ml100k_without_u_genre_uses_the_standard_genres(tmp_path):
    (tmp_path / "u.data").write_bytes(b"")
    (tmp_path / "u.item").write_bytes(b"")
    layout = detect_layout(str(tmp_path))
    assert len(layout.genres) == 19
    assert layout.genres[0] == "unknown"
    flags = "|".join("1" if i in (0, 18) else "0" for i in range(19))
    raw = f"5|Copycat (1995)|01-Jan-1995||http://x|{flags}".encode()
    assert decode(raw, layout.items_decoder)["categories"] == ["unknown", "Western"]


def test_detect_ml1m(ml1m):
    layout = detect_layout(str(ml1m))
    assert layout == Layout(
        name="ml-1m",
        events_path=str(ml1m / "ratings.dat"),
        items_path=str(ml1m / "movies.dat"),
        events_reader="lines",
        events_decoder="movielens_dat_rating",
        items_reader="lines",
        items_decoder="movielens_dat_movie",
    )
    ratings = records(layout.events_path, layout.events_reader, layout.events_decoder)
    assert ratings == [
        {"user_id": "1", "item_id": "1193", "rating": "5", "timestamp": "978300760"},
        {"user_id": "1", "item_id": "661", "rating": "3", "timestamp": "978302109"},
    ]
    movies = records(layout.items_path, layout.items_reader, layout.items_decoder)
    assert movies == [
        {
            "item_id": "1",
            "title": "Toy Story (1995)",
            "description": "",
            "categories": ["Animation", "Children's", "Comedy"],
        },
        {
            "item_id": "73",
            "title": "Misérables, Les (1995)",
            "description": "",
            "categories": ["Drama", "Musical"],
        },
    ]


def test_detect_ml_latest(ml_latest):
    layout = detect_layout(str(ml_latest))
    assert layout.name == "ml-latest"
    assert layout.events_path == str(ml_latest / "ratings.csv")
    assert layout.items_path == str(ml_latest / "movies.csv")
    assert layout.side_files == (
        SideFile("tag", str(ml_latest / "tags.csv"), "csv", "movielens_tag_csv"),
    )
    assert (layout.events_reader, layout.items_reader) == ("csv", "csv")
    ratings = records(layout.events_path, layout.events_reader, layout.events_decoder)
    assert ratings == [
        {"user_id": "1", "item_id": "1", "rating": "4.0", "timestamp": "964982703"},
        {"user_id": "1", "item_id": "3", "rating": "4.5", "timestamp": "964981247"},
    ]
    movies = records(layout.items_path, layout.items_reader, layout.items_decoder)
    assert [m["title"] for m in movies] == [
        "Toy Story (1995)",
        "Misérables, Les (1995)",
        "La cravate (1957)",
    ]
    assert movies[0]["categories"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert movies[1] == {
        "item_id": "73",
        "title": "Misérables, Les (1995)",
        "description": "",
        "categories": ["Drama", "War"],
    }
    assert movies[2]["categories"] == []
    (tags,) = layout.side_files
    assert records(tags.path, tags.reader, tags.decoder) == [{"item_id": "60756", "tag": "funny"}]


def test_ml_latest_without_tags(ml_latest):
    (ml_latest / "tags.csv").unlink()
    assert detect_layout(str(ml_latest)).side_files == ()


def test_ml100k_files_win_over_others(ml_latest):
    (ml_latest / "u.data").write_bytes(b"")
    (ml_latest / "u.item").write_bytes(b"")
    assert detect_layout(str(ml_latest)).name == "ml-100k"


@pytest.mark.parametrize(
    "files",
    [[], ["u.data"], ["ratings.dat"], ["movies.csv"], ["events.jsonl", "items.jsonl"]],
)
def test_non_movielens_dir_raises_data_error_naming_the_path(tmp_path, files):
    for name in files:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match="is not a MovieLens directory") as info:
        detect_layout(str(tmp_path))
    assert repr(str(tmp_path)) in str(info.value)


def test_movielens_names_that_are_directories_do_not_count(tmp_path):
    (tmp_path / "u.data").mkdir()
    (tmp_path / "u.item").mkdir()
    with pytest.raises(DataError):
        detect_layout(str(tmp_path))


def test_path_that_is_not_a_directory_raises_data_error(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is not a directory") as info:
        detect_layout(missing)
    assert repr(missing) in str(info.value)
    file = tmp_path / "ratings.csv"
    file.write_bytes(LATEST_RATINGS)
    with pytest.raises(DataError, match="is not a directory"):
        detect_layout(str(file))


# --- decoders ----------------------------------------------------------------------------------


def test_100k_rating_decoder_strips_whitespace():
    assert decode(b"196\t242\t 3 \t881250949", "movielens_100k_rating") == {
        "user_id": "196",
        "item_id": "242",
        "rating": "3",
        "timestamp": "881250949",
    }


def test_dat_movie_without_genres():
    raw = "9::Nothing (2000)::(no genres listed)".encode("latin-1")
    assert decode(raw, "movielens_dat_movie")["categories"] == []


@pytest.mark.parametrize(
    ("raw", "decoder", "detail"),
    [
        (b"196\t242\t3", "movielens_100k_rating", "u.data line: expected 4 fields, got 3"),
        (b"196 242 3 881250949", "movielens_100k_rating", "expected 4 fields, got 1"),
        (b"1::1193::5::978300760::x", "movielens_dat_rating", "expected 4 fields, got 5"),
        (b"1::1193::5", "movielens_dat_rating", "ratings.dat line: expected 4 fields, got 3"),
        (b"1::Toy Story (1995)", "movielens_dat_movie", "movies.dat line: expected 3 fields"),
        (b"1|Toy Story (1995)|01-Jan-1995||url|0|1", "movielens_100k_item", "expected 24 fields"),
    ],
)
def test_malformed_lines_raise_record_error(raw, decoder, detail):
    with pytest.raises(RecordError) as info:
        decode(raw, decoder)
    assert info.value.reason == reasons.MALFORMED
    assert detail in info.value.detail


@pytest.mark.parametrize(
    ("raw", "decoder"),
    [
        (b"19\xe96\t242\t3\t881250949", "movielens_100k_rating"),
        (b"1::2::\xff::3", "movielens_dat_rating"),
    ],
)
def test_non_ascii_in_numeric_fields_is_invalid_utf8(raw, decoder):
    with pytest.raises(RecordError) as info:
        decode(raw, decoder)
    assert info.value.reason == reasons.INVALID_UTF8


@pytest.mark.parametrize(
    ("decoder", "row", "missing"),
    [
        ("movielens_rating_csv", {"userId": "1", "movieId": "2", "timestamp": "3"}, "rating"),
        ("movielens_movie_csv", {"movieId": "1", "title": "T"}, "genres"),
        ("movielens_tag_csv", {"userId": "1", "tag": "x", "timestamp": "3"}, "movieId"),
    ],
)
def test_csv_decoders_name_a_missing_column(decoder, row, missing):
    with pytest.raises(RecordError) as info:
        decode(row, decoder, reader="csv")
    assert info.value.reason == reasons.MISSING_FIELD
    assert info.value.field == missing


def test_ml_latest_csv_with_invalid_utf8_is_a_record_error():
    fmt = FileFormat("csv", "movielens_movie_csv")
    data = b"movieId,title,genres\n1,Caf\xe9 (1995),Comedy\n"
    (_, _), (_, raw) = iter_raw_records(io.BytesIO(data), fmt)
    with pytest.raises(RecordError) as info:
        decode_record(raw, fmt)
    assert info.value.reason == reasons.INVALID_UTF8
    assert info.value.field == "title"


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
