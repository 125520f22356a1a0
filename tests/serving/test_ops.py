"""Op compatibility: every op in the export (functions included) is core TensorFlow or TF Text,
the two op libraries the stock TF Serving binary links. No py_func, no ScaNN."""

from tests.conftest import run_fresh_python

# Runs in a fresh interpreter, so nothing but TensorFlow itself has registered ops yet.
_CLASSIFY = """
import json, os, sys
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
import tensorflow as tf

proto = saved_model_pb2.SavedModel()
with open(os.path.join(sys.argv[1], "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
ops, compiled = set(), 0
for graph in proto.meta_graphs:
    ops.update(node.op for node in graph.graph_def.node)
    for function in graph.graph_def.library.function:
        ops.update(node.op for node in function.node_def)
        compiled += function.attr["_XlaMustCompile"].b
core = {op for op in ops if op_def_registry.get(op) is not None}
import tensorflow_text  # noqa: the TF Text op library, as TF Serving links it
text = {op for op in ops - core if op_def_registry.get(op) is not None}
other = sorted(ops - core - text)
print(json.dumps({"core": sorted(core), "text": sorted(text), "other": other, "xla": compiled}))
"""

_FORBIDDEN = ("PyFunc", "EagerPyFunc", "PyFuncStateless")


def test_every_op_is_core_tensorflow_or_tf_text(exported):
    _, path = exported
    assert_stock_server_ops(path)


def assert_stock_server_ops(path: str) -> set[str]:
    """Checks that every op of the SavedModel at `path` is one the stock server links, that
    the query is tokenized in the graph, and that recommend and mmr are compiled; returns the
    ops."""
    ops = run_fresh_python(_CLASSIFY, path)
    assert ops["other"] == [], f"ops outside core TensorFlow and TF Text: {ops['other']}"
    used = set(ops["core"]) | set(ops["text"])
    assert not used & set(_FORBIDDEN)
    assert not [op for op in used if "scann" in op.lower()]
    # The in-graph tokenizer is TF Text's; retrieval and MMR are core ops.
    assert any("Wordpiece" in op or "FastBert" in op for op in ops["text"]), ops["text"]
    assert {"TopKV2", "MatMul", "BatchMatMulV2"} & set(ops["core"])
    # recommend's and mmr's cores are compiled (their ops are core ops too, listed above): the
    # server needs --xla_cpu_compilation_enabled, which the written docker-compose.yml passes.
    assert ops["xla"] >= 2
    return used
