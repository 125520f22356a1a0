"""The chief of a multi-worker run, read from TF_CONFIG without TensorFlow: TensorFlow's answer
for every task of clusters with and without a chief, and a clear error for a broken TF_CONFIG."""

import json

import pytest
from tensorflow.python.distribute import multi_worker_util

from pipeline.core.cluster import is_chief
from pipeline.core.errors import ConfigError

_WORKERS = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
_CLUSTERS = {
    "workers": {"worker": _WORKERS},
    "chief and workers": {"chief": ["127.0.0.1:4"], "worker": _WORKERS},
    "with an evaluator": {"worker": _WORKERS, "evaluator": ["127.0.0.1:5"]},
}
_TASKS = [
    (name, kind, index)
    for name, cluster in _CLUSTERS.items()
    for kind, addresses in cluster.items()
    for index in range(len(addresses))
]


@pytest.mark.parametrize(("cluster", "kind", "index"), _TASKS)
def test_the_chief_is_the_one_tensorflow_chooses(cluster, kind, index):
    spec = _CLUSTERS[cluster]
    tf_config = json.dumps({"cluster": spec, "task": {"type": kind, "index": index}})
    assert is_chief(tf_config) == multi_worker_util.is_chief(spec, kind, index)


@pytest.mark.parametrize("tf_config", [None, "", json.dumps({"task": {"type": "worker"}})])
def test_without_a_cluster_a_process_is_its_own_chief(tf_config):
    assert is_chief(tf_config)


@pytest.mark.parametrize(
    "tf_config", ["{not json", json.dumps({"cluster": {"worker": _WORKERS}}), "[1]"]
)
def test_a_broken_tf_config_is_refused_with_its_value(tf_config):
    with pytest.raises(ConfigError, match="TF_CONFIG must be JSON") as error:
        is_chief(tf_config)
    assert tf_config in str(error.value)
