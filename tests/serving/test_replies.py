"""What the clients share (`serving/replies.py`): the timeout check, and the check of a reply
against the serving contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from serving.client import GrpcClient, RestClient, ServingError
from tests.serving.fake_tf_serving import canned_rest_server
from tests.serving.toy_recommender import MODEL


@pytest.mark.parametrize("timeout", [-1, 0, math.nan, math.inf, "10"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(timeout):
    for client in (RestClient, GrpcClient):
        with pytest.raises(ValueError) as info:
            client("localhost:1", MODEL, timeout=timeout)
        assert f"(got {timeout!r})" in str(info.value)


_GOOD_ROW = {
    "item_ids": ["i1", "i2"],
    "scores": [0.5, 0.25],
    "relevance": [1.0, 0.5],
    "explanation_item_ids": ["h1", ""],
    "explanation_scores": [0.9, 0.0],
}


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (
            {"predictions": [{**_GOOD_ROW, "scores": ["high", "low"]}]},
            "output 'scores' must hold float32 values (got [['high', 'low']])",
        ),
        (
            {"predictions": [{**_GOOD_ROW, "item_ids": [1, 2]}]},
            "output 'item_ids' must hold string values (got [[1, 2]])",
        ),
        (
            {"predictions": [{**_GOOD_ROW, "scores": [True, False]}]},
            "output 'scores' must hold float32 values (got [[True, False]])",
        ),
        (
            {"predictions": [{**_GOOD_ROW, "item_ids": [["i1"], "i2"]}]},
            "output 'item_ids' is not a rectangular tensor (got [[['i1'], 'i2']])",
        ),
        (
            {"predictions": [{k: v for k, v in _GOOD_ROW.items() if k != "relevance"}]},
            "output(s) 'relevance' missing",
        ),
        (
            {"predictions": [_GOOD_ROW, _GOOD_ROW]},
            "output 'item_ids' has shape [2, 2], not one row for each of the 1 request row(s)",
        ),
        ({"predictions": "none"}, "'predictions' must be a non-empty list (got 'none')"),
        (["a", "list"], "no 'predictions' in the reply ['a', 'list']"),
    ],
)
def test_a_reply_that_does_not_fit_the_contract_is_a_serving_error(reply, detail):
    with canned_rest_server(json.dumps(reply).encode()) as url:
        client = RestClient(url, MODEL, timeout=5)
        with pytest.raises(ServingError) as info:
            client.predict("serving_default", {"user_id": "u"})

    assert str(info.value) == (
        f"POST {url}/v1/models/recsys:predict failed: the reply does not fit signature "
        f"'serving_default': {detail}"
    )


def test_a_reply_that_fits_the_contract_comes_back_typed():
    with canned_rest_server(json.dumps({"predictions": [_GOOD_ROW]}).encode()) as url:
        outputs = RestClient(url, MODEL, timeout=5).predict("serving_default", {"user_id": "u"})

    assert outputs["scores"].dtype == np.float32 and outputs["scores"].tolist() == [[0.5, 0.25]]
    assert outputs["item_ids"].tolist() == [["i1", "i2"]]
