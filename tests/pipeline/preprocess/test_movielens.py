"""Tests of MovieLens layout detection and the per-layout decoders (the side files:
test_movielens_side_files.py)."""

from __future__ import annotations

import io

import pytest

from pipeline.core.errors import DataError
from pipeline.preprocess import reasons
from pipeline.preprocess.formats import FileFormat, decode_record, iter_raw_records
from pipeline.preprocess.movielens import Layout, SideFile, detect_layout
from pipeline.preprocess.reasons import RecordError
from tests.conftest import MOVIELENS_100K
from tests.pipeline.preprocess.movielens_files import LATEST_RATINGS, decode, records

needs_ml100k = pytest.mark.skipif(
    not MOVIELENS_100K.is_dir(), reason=f"MovieLens 100K not found at {MOVIELENS_100K}"
)


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
