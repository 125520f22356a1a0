"""Fixtures of the preprocess tests: MovieLens directories of the tiny files in
`movielens_files.py`."""

import pytest

from tests.pipeline.preprocess.movielens_files import (
    LATEST_MOVIES,
    LATEST_RATINGS,
    LATEST_TAGS,
    ML1M_MOVIES,
    ML1M_RATINGS,
)


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
