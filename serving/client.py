"""Clients for the recommender behind TensorFlow Serving: REST (standard library) and gRPC.

Both take the inputs of one or more request rows, check them against the serving contract
(`serving/signatures.py`), fill what the caller left out from `DEFAULTS`, and send tensors of
exactly the signature's dtypes, so a request never depends on how TF Serving would guess a
type. Inputs come either as columns or as rows:

    client.predict("serving_default", {"user_id": ["u1", "u2"], "k": 5})   # k for both rows
    client.predict("serving_default", [recommend_request("u1", history=["i3"]),
                                       recommend_request("u2", k=3)])

Requests are built by `serving/requests.py` (`prepare_inputs`), shared with in-process calls.

TF Serving's REST API has its own JSON rules (`tensorflow_serving/util/json_tensor.cc`): the
row format stacks each input over `instances`, integers must be written as whole numbers,
booleans as `true`/`false`, and bytes that are not UTF-8 text as `{"b64": ...}`. String
outputs come back as plain JSON strings (base64 only for outputs named `*_bytes`), so output
strings are decoded as UTF-8 text here, over REST and gRPC alike.

A client's `timeout` is the deadline of a whole call, from connecting to the reply's last byte
(gRPC's call deadline; over REST `serving/http_deadline.py`), so a server that trickles its
reply cannot stretch it. A reply that does not fit the contract (an output missing, of the
wrong type or shape) is a `ServingError` too.

This module is the clients' public face: the REST client is `serving.rest_client`, the gRPC one
`serving.grpc_client`, and what they share (errors, reply checks) `serving.replies`.
"""

from serving.grpc_client import GrpcClient, predict_request
from serving.replies import ServingError, decode_strings
from serving.requests import RequestError, prepare_inputs, recommend_request
from serving.rest_client import RestClient, rest_predict_body

__all__ = [
    "GrpcClient",
    "RequestError",
    "RestClient",
    "ServingError",
    "decode_strings",
    "predict_request",
    "prepare_inputs",
    "recommend_request",
    "rest_predict_body",
]
