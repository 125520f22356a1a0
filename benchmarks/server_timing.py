"""How the serving benchmarks time a SavedModel's signatures: the way TF Serving runs them.

A signature runs in a `tf.compat.v1.Session` over the loaded MetaGraph, with the request's
tensors already in TensorFlow's memory (variables mapped onto the signature's inputs), as they
are once the server has decoded a request; `feed_overhead` measures what Python's feed path
would add. Callables are timed in short alternating rounds (`interleaved`), so that this
machine's drift hits each alike. `Floor` is what every retrieval is compared with: the index's
matmul + top-k alone.
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

__all__ = [
    "Floor",
    "call_times",
    "feed_overhead",
    "interleaved",
    "percentiles",
    "session_call",
    "signature_input_names",
]


class Floor(tf.Module):
    """The index's matmul + top-k alone: the least any brute-force retrieval can cost, run by
    the executor or (`compiled`) as one XLA program, as the export's own retrieval is."""

    def __init__(self, index: np.ndarray, count: int, compiled: bool = False):
        super().__init__()
        self.index = tf.Variable(index, trainable=False)
        self.count = count
        self._top = tf.function(self._top_k, jit_compile=compiled)

    def _top_k(self, query):
        top = tf.math.top_k(tf.matmul(query, self.index, transpose_b=True), k=self.count)
        return top.indices, top.values

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="query")])
    def retrieve(self, query):
        rows, scores = self._top(query)
        return {"rows": rows, "scores": scores}


def session_call(path: str, signature: str, inputs: dict[str, np.ndarray], held: bool):
    """A callable that runs one signature of a SavedModel the way TF Serving does: a session
    over the loaded MetaGraph, fetched by the signature's tensor names. `held`: the inputs
    are variables mapped onto the signature's inputs; otherwise they are fed from NumPy."""
    graph = tf.Graph()
    with graph.as_default():
        session = tf.compat.v1.Session(graph=graph)
        input_map = None
        if held:
            names = signature_input_names(path, signature)
            request = {
                name: tf.Variable(value, name=f"request_{name}") for name, value in inputs.items()
            }
            input_map = {names[name]: request[name].read_value() for name in inputs}
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path, input_map=input_map)
        if held:
            session.run([variable.initializer for variable in request.values()])
    sig = meta.signature_def[signature]
    fetches = {name: info.name for name, info in sig.outputs.items()}
    if held:
        return session.make_callable(fetches)
    run = session.make_callable(fetches, feed_list=[sig.inputs[name].name for name in inputs])
    values = list(inputs.values())
    return lambda: run(*values)


def signature_input_names(path: str, signature: str) -> dict[str, str]:
    """Each input of a signature → its tensor's name in the MetaGraph (read from the
    SavedModel's proto, without loading it)."""
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        saved.ParseFromString(file.read())
    (meta,) = [m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags]
    return {name: info.name for name, info in meta.signature_def[signature].inputs.items()}


def feed_overhead(inputs: dict[str, np.ndarray]):
    """A callable that feeds `inputs` from NumPy to a graph that only passes them through:
    what Python's feed path alone costs."""
    graph = tf.Graph()
    with graph.as_default():
        holders = [
            tf.compat.v1.placeholder(tf.string if value.dtype.kind == "S" else value.dtype)
            for value in inputs.values()
        ]
        outputs = [tf.identity(holder) for holder in holders]
        session = tf.compat.v1.Session(graph=graph)
    run = session.make_callable(outputs, feed_list=holders)
    values = list(inputs.values())
    return lambda: run(*values)


def interleaved(fns: dict, repeats: int, rounds: int = 50) -> dict:
    """p50 and p99 of each callable over `repeats` calls, made in `rounds` short rounds that
    take turns: this machine's speed drifts by tens of percent within seconds, and short
    alternating rounds spread the drift over every callable alike."""
    for fn in fns.values():
        for _ in range(20):  # warm-up
            fn()
    runs = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            runs[key].extend(call_times(fn, max(repeats // rounds, 1)))
    return {key: percentiles(times) for key, times in runs.items()}


def call_times(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.array(times) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
