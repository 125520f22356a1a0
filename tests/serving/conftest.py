"""Shared by the serving tests: a known umask, and the toy export of `toy_recommender.py`
served over REST and gRPC by the TF Serving stand-ins (the exported tiny recommender they test
is `exported`, in tests/conftest.py)."""

import os
import stat

import pytest
import tensorflow as tf

from serving.client import GrpcClient, RestClient
from serving.signatures import SIGNATURES
from tests.serving.fake_tf_serving import FakeGrpcServer, FakeRestServer, ServedModel
from tests.serving.toy_recommender import MODEL, ToyRecommender

UMASK = 0o027  # not the usual 022, so a mode that merely happens to be 644 does not pass


@pytest.fixture
def umask():
    """Runs the test under `UMASK` (restored after): new files are 0o640, folders 0o750."""
    old = os.umask(UMASK)
    yield UMASK
    os.umask(old)


def modes_under(folder) -> dict[str, int]:
    """Relative path → permission bits of `folder` ("."), everything below it."""
    modes = {".": stat.S_IMODE(os.stat(folder).st_mode)}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            modes[os.path.relpath(path, folder)] = stat.S_IMODE(os.stat(path).st_mode)
    return modes


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> ServedModel:
    toy = ToyRecommender()
    path = tmp_path_factory.mktemp("toy_export")
    tf.saved_model.save(toy, str(path), signatures={n: getattr(toy, n) for n in SIGNATURES})
    return ServedModel(path, MODEL, version=1)


@pytest.fixture(scope="module")
def rest_server(served):
    with FakeRestServer(served) as server:
        yield server


@pytest.fixture(scope="module")
def grpc_server(served):
    with FakeGrpcServer(served) as server:
        yield server


@pytest.fixture
def rest(rest_server) -> RestClient:
    return RestClient(rest_server.url, MODEL, timeout=10.0)


@pytest.fixture
def grpc_client(grpc_server):
    with GrpcClient(grpc_server.target, MODEL, timeout=10.0) as client:
        yield client
