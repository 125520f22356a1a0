"""The real export behind TF Serving stand-ins: the bodies the clients build, decoded the way
TF Serving decodes them, drive every signature and give what an in-process call gives."""

import numpy as np
import pytest

from serving.client import GrpcClient, RestClient, ServingError, recommend_request
from serving.recommend import InProcessModel, connect, recommend
from tests.serving.fake_tf_serving import FakeGrpcServer, FakeRestServer, ServedModel


@pytest.fixture(scope="module")
def servers(exported):
    config, path = exported
    model = ServedModel(path, config.serving.model_name)
    with FakeRestServer(model) as rest, FakeGrpcServer(model) as grpc_server:
        yield config, path, rest, grpc_server


def _requests(items):
    """One request per signature, timestamps pinned so calls compare exactly."""
    rows = [
        recommend_request("u1", items[:2], "", 4, 0.5, True, 1_700_000_000),
        recommend_request("stranger", [], "warm socks", 2, 1.0, False, 1_700_000_000),
    ]
    query = {
        "user_id": ["u1", "stranger"],
        "history_item_ids": [items[:2], []],
        "query": ["", "warm socks"],
        "timestamp": 1_700_000_000,
    }
    return {
        "serving_default": rows,
        "retrieve": {**query, "k": 5, "exclude_seen": True},
        "rank": {**query, "item_ids": [items[:3], items[3:5]]},
        "mmr": {
            "item_ids": [items[:6]],
            "relevance": [[3, 2, 1, 0, 5, 4]],
            "k": 3,
            "mmr_lambda": 0.4,
        },
        "similar_items": {"item_ids": items[:2], "k": 3},
    }


def _same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        if a[name].dtype == object:
            assert a[name].tolist() == b[name].tolist(), name
        else:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("transport", ["rest-row", "rest-columnar", "grpc"])
def test_every_signature_over_the_wire_matches_the_in_process_call(servers, transport):
    config, path, rest, grpc_server = servers
    local = InProcessModel(path)
    items = [line for line in _catalog(config)]
    for signature, inputs in _requests(items).items():
        expected = local.predict(signature, inputs)
        if transport == "grpc":
            with GrpcClient(grpc_server.target, config.serving.model_name) as client:
                got = client.predict(signature, inputs)
        else:
            client = RestClient(rest.url, config.serving.model_name)
            got = client.predict(signature, inputs, format=transport.split("-")[1])
        _same(expected, got)


def test_recommend_through_a_server_and_a_refused_request(servers):
    config, _, rest, grpc_server = servers
    items = _catalog(config)
    for server in (rest.url, grpc_server.target):
        backend = connect(config, server)
        results = recommend(backend, config, "u1", items[:2], k=3)
        assert len(results) == 3 and all(r["because"] in items[:2] for r in results)
    with pytest.raises(ServingError, match="mmr_lambda") as error:
        RestClient(rest.url, config.serving.model_name).predict(
            "serving_default", [recommend_request("u1", mmr_lambda=3.0)]
        )
    assert error.value.status == 400


def test_metadata_lists_the_contract(servers):
    config, _, rest, grpc_server = servers
    from serving.signatures import SIGNATURES

    for meta in (
        RestClient(rest.url, config.serving.model_name).metadata(),
        GrpcClient(grpc_server.target, config.serving.model_name).metadata(),
    ):
        assert set(meta["signatures"]) == set(SIGNATURES)
        for name, sig in SIGNATURES.items():
            assert set(meta["signatures"][name]["inputs"]) == {s.name for s in sig.inputs}
            assert set(meta["signatures"][name]["outputs"]) == set(sig.outputs)


def _catalog(config):
    from models.train import load_feature_space

    return load_feature_space(config).catalog_ids
