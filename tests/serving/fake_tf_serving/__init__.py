"""In-process stand-ins for TensorFlow Serving's REST and gRPC APIs, serving any SavedModel.

The stock model server cannot run here, so tests serve a SavedModel with these instead. Both
run the requested signature of `tf.saved_model.load(path).signatures[name]` (`model.py`) and
answer like TF Serving: the same URLs and JSON (`rest_server.py`, `json_request.py`,
`json_reply.py`), the same protos and status codes (`grpc_server.py`), the same messages where
it matters to a client (servable not found, input-size mismatch, a model's own
`InvalidArgumentError`). `stub_servers.py` holds servers with no model, for timeouts and
replies that break the contract.

    model = ServedModel(export_dir, "recsys")          # load once, share between servers
    with FakeRestServer(model) as rest, FakeGrpcServer(model) as grpc_server:
        RestClient(rest.url, "recsys").predict(...)    # rest.url: "http://127.0.0.1:<port>"
        GrpcClient(grpc_server.target, "recsys")       # target: "127.0.0.1:<port>"
    with silent_server() as address:                   # accepts connections, never answers
        ...
    with trickling_server() as url:                    # answers, one byte at a time
        ...
    with canned_rest_server(b'{"predictions": 1}') as url:   # the same reply to everything
        ...

Unlike the real server, the fakes reject an input whose shape does not fit the signature's
(rank or fixed sizes) with INVALID_ARGUMENT, so client shape bugs show up early; classify,
regress and version labels are not emulated.
"""

from tests.serving.fake_tf_serving.grpc_server import FakeGrpcServer
from tests.serving.fake_tf_serving.json_reply import encode_predict_response
from tests.serving.fake_tf_serving.json_request import JsonTensorError, decode_predict_request
from tests.serving.fake_tf_serving.model import ServedModel, ServingStatus
from tests.serving.fake_tf_serving.rest_server import HTTP_STATUS, FakeRestServer, rest_post
from tests.serving.fake_tf_serving.stub_servers import (
    canned_rest_server,
    silent_server,
    trickling_server,
)

__all__ = [
    "HTTP_STATUS",
    "FakeGrpcServer",
    "FakeRestServer",
    "JsonTensorError",
    "ServedModel",
    "ServingStatus",
    "canned_rest_server",
    "decode_predict_request",
    "encode_predict_response",
    "rest_post",
    "silent_server",
    "trickling_server",
]
