"""Tiny MovieLens files (ml-1m and ml-latest lines, as the releases write them) and helpers that
decode a file or a record the way the preprocess job does. The directories holding them are the
`ml1m` and `ml_latest` fixtures (conftest.py)."""

from __future__ import annotations

from pipeline.preprocess.formats import FileFormat, decode_record, iter_raw_records

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
