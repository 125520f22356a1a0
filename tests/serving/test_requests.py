"""Request rows and columns checked against the serving contract and turned into tensors
(`serving/requests.py`), before any client sends them."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import RecsysError
from serving.client import RequestError, prepare_inputs
from serving.signatures import DEFAULTS, input_specs
from tests.serving.toy_recommender import TWO_USERS


def test_prepare_inputs_fills_defaults_pads_and_converts():
    arrays = prepare_inputs("serving_default", TWO_USERS)

    assert list(arrays) == [spec.name for spec in input_specs("serving_default")]
    assert arrays["user_id"].tolist() == [b"u1", b"u2"]
    assert arrays["history_item_ids"].tolist() == [[b"i1", b"i22"], [b"", b""]]
    assert arrays["k"].dtype == np.int32 and arrays["k"].tolist() == [3, DEFAULTS["k"]]
    assert arrays["mmr_lambda"].dtype == np.float32
    np.testing.assert_array_equal(arrays["mmr_lambda"], np.float32([DEFAULTS["mmr_lambda"], 0.25]))
    assert arrays["timestamp"].dtype == np.int64 and arrays["timestamp"].tolist() == [100, 0]
    assert arrays["exclude_seen"].tolist() == [True, False]


def test_prepare_inputs_columns_repeat_single_values_over_rows():
    columns = {
        "user_id": np.array(["a", "b"]),
        "history_item_ids": ["h1"],  # one list: every row's history
        "k": np.int64(4),
    }
    arrays = prepare_inputs("retrieve", columns, defaults={"k": 7})

    assert arrays["user_id"].tolist() == [b"a", b"b"]
    assert arrays["history_item_ids"].tolist() == [[b"h1"], [b"h1"]]
    assert arrays["k"].tolist() == [4, 4]  # given beats the defaults override
    assert prepare_inputs("retrieve", {"user_id": "a"}, defaults={"k": 7})["k"].tolist() == [7]
    assert prepare_inputs("retrieve", {"user_id": 196})["user_id"].tolist() == [b"196"]


def test_empty_lists_become_one_padding_element_per_row():
    arrays = prepare_inputs("retrieve", {"user_id": ["a", "b"], "history_item_ids": []})
    mmr = prepare_inputs("mmr", {"item_ids": [[]], "relevance": [[]]})

    assert arrays["history_item_ids"].tolist() == [[b""], [b""]]
    assert mmr["item_ids"].tolist() == [[b""]] and mmr["relevance"].tolist() == [[0.0]]


def test_unknown_input_name_is_named_with_the_known_ones(rest_server, rest):
    with pytest.raises(ValueError, match=r"unknown input 'histroy'.*known inputs: user_id, "):
        prepare_inputs("serving_default", {"user_id": "u", "histroy": ["i1"]})
    sent = len(rest_server.requests)
    with pytest.raises(ValueError, match="'histroy'"):
        rest.predict("serving_default", [{"user_id": "u", "histroy": []}])
    assert len(rest_server.requests) == sent  # nothing went to the server


@pytest.mark.parametrize(
    ("signature", "inputs", "message"),
    [
        ("serving_default", {"query": "q"}, "'user_id'.*has no default"),
        ("serving_default", {"user_id": "u", "k": 2.5}, "'k'.*int32.*2.5"),
        ("serving_default", {"user_id": "u", "k": 2**40}, "'k'"),
        ("serving_default", {"user_id": "u", "exclude_seen": 1}, "'exclude_seen'.*bool"),
        ("serving_default", {"user_id": ["a", "b"], "k": [1, 2, 3]}, "different numbers of rows"),
        ("serving_default", {"user_id": "u", "history_item_ids": "i1"}, "list of values per row"),
        ("serving_default", {"user_id": [["a"]]}, "single value per row"),
        ("serving_default", {"user_id": []}, "no request rows"),
        ("recommend", {"user_id": "u"}, "unknown signature 'recommend'"),
        ("rank", {"user_id": "u", "item_ids": [1.5]}, "'item_ids'.*string"),
    ],
)
def test_prepare_inputs_rejects_bad_values(signature, inputs, message):
    with pytest.raises(ValueError, match=message):
        prepare_inputs(signature, inputs)


def test_a_string_that_is_not_utf8_text_is_a_request_error_naming_the_input():
    user = b"caf\xe9".decode("utf-8", "surrogateescape")  # argv bytes in Latin-1
    with pytest.raises(RequestError) as info:
        prepare_inputs("serving_default", {"user_id": user})
    assert str(info.value) == (
        "input 'user_id' of 'serving_default' is not UTF-8 text: 'caf\\udce9'"
    )
    assert isinstance(info.value, RecsysError) and isinstance(info.value, ValueError)


def test_defaults_override_must_name_known_inputs():
    with pytest.raises(ValueError, match="unknown inputs \\['kk'\\]"):
        prepare_inputs("serving_default", {"user_id": "u"}, defaults={"kk": 3})
