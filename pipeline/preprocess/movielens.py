"""Adapters for the MovieLens layouts users download: ml-100k, ml-1m, ml-latest(-small).

`detect_layout` recognizes a directory by its files; the decoders turn each layout's lines or rows
into the pipeline's canonical fields (`user_id`, `item_id`, `rating`, `timestamp` for ratings;
`item_id`, `title`, `description`, `categories` for movies; `item_id`, `tag` for tags; `item_id`,
`plot` for the plots some ml-1m copies carry). Item text is the title and genres, plus the tags or
the plot (as the description) when the layout has them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import DataError
from pipeline.preprocess import reasons
from pipeline.preprocess.reasons import RecordError

__all__ = ["DECODERS", "Layout", "SideFile", "detect_layout"]

_NO_GENRES = "(no genres listed)"
_PLOT_FILE = "movies_extrainfos.dat"
_NOT_AVAILABLE = "N/A"  # OMDb's placeholder for a missing value


@dataclass(frozen=True)
class SideFile:
    """A file of item text joined to the movies by id.

    Attributes:
      kind: `tag` (joined into the item's extra text) or `plot` (becomes its description); the
        decoder returns `item_id` and a field of this name.
      path / reader / decoder: The file, its reader (see `pipeline.preprocess.formats`) and
        decoder name.
    """

    kind: str
    path: str
    reader: str
    decoder: str


@dataclass(frozen=True)
class Layout:
    """One MovieLens release on disk.

    Attributes:
      name: `ml-100k`, `ml-1m` or `ml-latest` (the small and full ml-latest share a layout).
      events_path / items_path: Files of ratings and movies.
      events_reader / items_reader: `lines` or `csv` (see `pipeline.preprocess.formats`).
      events_decoder / items_decoder: Decoder names in `DECODERS`.
      side_files: Optional files of item text found beside them: ml-latest's `tags.csv`, the
        `movies_extrainfos.dat` of plots that ml-1m copies from the MeLU paper carry.
      genres: ml-100k genre names in flag order (from `u.genre`).
    """

    name: str
    events_path: str
    items_path: str
    events_reader: str
    events_decoder: str
    items_reader: str
    items_decoder: str
    side_files: tuple[SideFile, ...] = ()
    genres: tuple[str, ...] = ()


def detect_layout(path: str) -> Layout:
    """Recognizes a MovieLens directory by its files.

    Raises:
      DataError: naming the directory and the files looked for.
    """

    def has(name: str) -> bool:
        return os.path.isfile(os.path.join(path, name))

    def join(name: str) -> str:
        return os.path.join(path, name)

    if not os.path.isdir(path):
        raise DataError(f"data.path {path!r} is not a directory (format movielens needs one)")
    if has("u.data") and has("u.item"):
        return Layout(
            name="ml-100k",
            events_path=join("u.data"),
            items_path=join("u.item"),
            events_reader="lines",
            events_decoder="movielens_100k_rating",
            items_reader="lines",
            items_decoder="movielens_100k_item",
            genres=_read_100k_genres(join("u.genre")) if has("u.genre") else _ML100K_GENRES,
        )
    if has("ratings.dat") and has("movies.dat"):
        return Layout(
            name="ml-1m",
            events_path=join("ratings.dat"),
            items_path=join("movies.dat"),
            events_reader="lines",
            events_decoder="movielens_dat_rating",
            items_reader="lines",
            items_decoder="movielens_dat_movie",
            side_files=(
                (SideFile("plot", join(_PLOT_FILE), "lines", "movielens_dat_plot"),)
                if has(_PLOT_FILE)
                else ()
            ),
        )
    if has("ratings.csv") and has("movies.csv"):
        return Layout(
            name="ml-latest",
            events_path=join("ratings.csv"),
            items_path=join("movies.csv"),
            events_reader="csv",
            events_decoder="movielens_rating_csv",
            items_reader="csv",
            items_decoder="movielens_movie_csv",
            side_files=(
                (SideFile("tag", join("tags.csv"), "csv", "movielens_tag_csv"),)
                if has("tags.csv")
                else ()
            ),
        )
    raise DataError(
        f"data.path {path!r} is not a MovieLens directory: expected u.data + u.item (ml-100k), "
        "ratings.dat + movies.dat (ml-1m) or ratings.csv + movies.csv (ml-latest)"
    )


# The genre order of ml-100k's u.item flags, used when u.genre is absent.
_ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def _read_100k_genres(path: str) -> tuple[str, ...]:
    pairs = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            name, sep, index = line.strip().rpartition("|")
            if sep and index.isdigit():
                pairs.append((int(index), name))
    return tuple(name for _, name in sorted(pairs))


def _split(raw: bytes, separator: bytes, expected: int, what: str) -> list[bytes]:
    parts = raw.split(separator)
    if len(parts) != expected:
        raise RecordError(
            reasons.MALFORMED, f"{what}: expected {expected} fields, got {len(parts)}"
        )
    return parts


def _ascii(value: bytes) -> str:
    try:
        return value.decode("ascii").strip()
    except UnicodeDecodeError:
        raise RecordError(reasons.INVALID_UTF8, "non-ASCII bytes in a numeric field") from None


def _rating(parts: list[bytes]) -> dict[str, Any]:
    user, item, rating, timestamp = (_ascii(p) for p in parts)
    return {"user_id": user, "item_id": item, "rating": rating, "timestamp": timestamp}


def _decode_100k_rating(raw: bytes, fmt: Any) -> dict[str, Any]:
    return _rating(_split(raw, b"\t", 4, "u.data line"))


def _decode_dat_rating(raw: bytes, fmt: Any) -> dict[str, Any]:
    return _rating(_split(raw, b"::", 4, "ratings.dat line"))


def _decode_100k_item(raw: bytes, fmt: Any) -> dict[str, Any]:
    genres = fmt.option("genres") or _ML100K_GENRES
    parts = raw.decode("latin-1").split("|")
    if len(parts) != 5 + len(genres):
        raise RecordError(
            reasons.MALFORMED, f"u.item line: expected {5 + len(genres)} fields, got {len(parts)}"
        )
    flags = parts[5:]
    categories = [genre for genre, flag in zip(genres, flags, strict=True) if flag.strip() == "1"]
    return {
        "item_id": parts[0].strip(),
        "title": parts[1].strip(),
        "description": "",
        "categories": categories,
    }


def _decode_dat_movie(raw: bytes, fmt: Any) -> dict[str, Any]:
    item, title, genres = (p.decode("latin-1") for p in _split(raw, b"::", 3, "movies.dat line"))
    return {
        "item_id": item.strip(),
        "title": title.strip(),
        "description": "",
        "categories": _genres(genres),
    }


def _decode_dat_plot(raw: bytes, fmt: Any) -> dict[str, Any]:
    parts = _split(raw.rstrip(b"\r\n"), b"::", 11, f"{_PLOT_FILE} line")
    item = _ascii(parts[0])
    try:
        plot = parts[9].decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise RecordError(
            reasons.INVALID_UTF8, f"invalid UTF-8 in field 'plot' at byte {e.start}", "plot"
        ) from None
    if plot in ("", _NOT_AVAILABLE):
        detail = "field 'plot' is empty" if not plot else f"field 'plot' is {plot!r} (no plot)"
        raise RecordError(reasons.EMPTY_FIELD, detail, "plot")
    return {"item_id": item, "plot": plot}


def _genres(text: str) -> list[str]:
    return [g.strip() for g in text.split("|") if g.strip() and g.strip() != _NO_GENRES]


def _require(row: dict[str, Any], *names: str) -> list[str]:
    missing = [n for n in names if n not in row]
    if missing:
        raise RecordError(reasons.MISSING_FIELD, f"missing column {missing[0]!r}", missing[0])
    return [str(row[n]) for n in names]


def _decode_rating_csv(raw: dict[str, Any], fmt: Any) -> dict[str, Any]:
    user, item, rating, timestamp = _require(raw, "userId", "movieId", "rating", "timestamp")
    return {"user_id": user, "item_id": item, "rating": rating, "timestamp": timestamp}


def _decode_movie_csv(raw: dict[str, Any], fmt: Any) -> dict[str, Any]:
    item, title, genres = _require(raw, "movieId", "title", "genres")
    return {"item_id": item, "title": title, "description": "", "categories": _genres(genres)}


def _decode_tag_csv(raw: dict[str, Any], fmt: Any) -> dict[str, Any]:
    item, tag = _require(raw, "movieId", "tag")
    return {"item_id": item.strip(), "tag": tag.strip()}


DECODERS = {
    "movielens_100k_rating": _decode_100k_rating,
    "movielens_100k_item": _decode_100k_item,
    "movielens_dat_rating": _decode_dat_rating,
    "movielens_dat_movie": _decode_dat_movie,
    "movielens_dat_plot": _decode_dat_plot,
    "movielens_rating_csv": _decode_rating_csv,
    "movielens_movie_csv": _decode_movie_csv,
    "movielens_tag_csv": _decode_tag_csv,
}
