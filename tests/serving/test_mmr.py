"""The graph MMR rerankers against their NumPy reference, plus tiny cases computed by hand.

Both implementations take every case: `mmr_select` (the executor's) and `mmr_select_static`
compiled with XLA (`compiled`), whose outputs are a fixed width wider than any k here.

Most cases use exact embeddings: entries ±1/4 in 16 dimensions are unit length and every dot
product is a multiple of 1/16, exact in float32 whatever the summation order. The graph and the
reference then compute bit-identical objectives, so they must agree on every pick, ties
included. Gaussian embeddings are checked with a tolerance instead: each pick must be a greedy
maximum of the objective recomputed in float64.
"""

import numpy as np
import pytest
import tensorflow as tf

from serving.mmr import mmr_select
from serving.mmr_compiled import mmr_select_static
from serving.mmr_reference import mmr_reference, normalize_relevance

SIGNATURE = (
    tf.TensorSpec([None, None, None], tf.float32),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.bool),
    tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([None], tf.float32),
    tf.TensorSpec([], tf.int32),
)
graph_mmr = tf.function(mmr_select, input_signature=SIGNATURE)
WIDTH = 320  # the compiled outputs' width: more than any k below
compiled_mmr = tf.function(
    lambda e, r, v, k, lam: mmr_select_static(e, r, v, k, lam, WIDTH), jit_compile=True
)
IMPLEMENTATIONS = ("executor", "compiled")

LAMBDAS = (0.0, 0.3, 0.5, 1.0)
# (N, k): k = 1, about a third of N, and N.
GRID = [(n, k) for n in (1, 2, 7, 50, 300) for k in sorted({1, max(1, n // 3), n})]


def run(embeddings, relevance, valid, k, lam, max_k=None, implementation="executor"):
    """A graph version on NumPy inputs; max_k defaults to max(k), as callers pass it. The
    compiled one's columns past max_k must be empty, and are cut off."""
    k = np.asarray(k, np.int32)
    if max_k is None:
        max_k = int(k.max()) if k.size else 0
    args = (
        tf.constant(embeddings, tf.float32),
        tf.constant(relevance, tf.float32),
        tf.constant(valid, tf.bool),
        tf.constant(k),
        tf.constant(lam, tf.float32),
    )
    if implementation == "executor":
        positions, scores = graph_mmr(*args, tf.constant(max_k, tf.int32))
        return positions.numpy(), scores.numpy()
    positions, scores = (t.numpy() for t in compiled_mmr(*args))
    assert positions.shape == scores.shape == (len(k), WIDTH)
    assert np.all(positions[:, max_k:] == -1) and np.all(scores[:, max_k:] == 0)
    return positions[:, :max_k], scores[:, :max_k]


def exact_vectors(rng, shape, pool=None, d=16):
    """Unit vectors with entries ±1/4; drawn from `pool` distinct vectors when given."""
    if pool is None:
        return rng.choice(np.float32([-0.25, 0.25]), size=(*shape, d))
    table = rng.choice(np.float32([-0.25, 0.25]), size=(pool, d))
    return table[rng.integers(0, pool, size=shape)]


def mixed_batch(rng, batch, n, k, lam):
    """Row 0 is the grid point (all valid); the other rows mix padding, k, λ and ties."""
    embeddings = exact_vectors(rng, (batch, n), pool=max(2, n // 3))  # duplicates: ties
    relevance = np.where(
        rng.random((batch, 1)) < 0.5,
        rng.integers(0, 4, (batch, n)),  # few levels: ties
        rng.normal(size=(batch, n)),
    ).astype(np.float32)
    valid = rng.random((batch, n)) >= rng.choice([0.0, 0.2, 0.5], size=(batch, 1))
    valid[0] = True
    ks = rng.integers(1, n + 1, size=batch).astype(np.int32)  # may exceed the valid count
    lams = rng.choice(np.float32([0.0, 0.3, 0.5, 0.7, 1.0]), size=batch)
    ks[0], lams[0] = k, lam
    return embeddings, relevance, valid, ks, lams


@pytest.mark.parametrize("lam", LAMBDAS)
@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize(("n", "k"), GRID)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_matches_reference(n, k, batch, lam, implementation):
    rng = np.random.default_rng([n, k, batch, int(lam * 10)])
    inputs = mixed_batch(rng, batch, n, k, lam)
    positions, scores = run(*inputs, implementation=implementation)
    want_positions, want_scores = mmr_reference(*inputs)
    np.testing.assert_array_equal(positions, want_positions)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("batch", "n", "d", "k"), [(1, 500, 64, 50), (3, 200, 32, 30)])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gaussian_embeddings_pick_greedy_maxima(batch, n, d, k, implementation):
    rng = np.random.default_rng(7)
    embeddings = rng.normal(size=(batch, n, d)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    relevance = rng.normal(size=(batch, n)).astype(np.float32)
    valid = rng.random((batch, n)) > 0.1
    lams = np.float32([0.7, 0.3, 0.0])[:batch]
    positions, scores = run(
        embeddings, relevance, valid, [k] * batch, lams, implementation=implementation
    )
    for row in range(batch):
        rel = normalize_relevance(relevance[row], valid[row]).astype(np.float64)
        sims = embeddings[row].astype(np.float64) @ embeddings[row].T.astype(np.float64)
        available = valid[row].copy()
        max_sim = np.zeros(n)
        for step, (best, score) in enumerate(zip(positions[row], scores[row], strict=True)):
            objective = lams[row] * rel - (1 - lams[row]) * max_sim
            assert available[best], f"row {row} step {step}: {best} is padding or picked"
            assert objective[best] >= objective[available].max() - 1e-5
            assert score == pytest.approx(objective[best], abs=1e-5)
            available[best] = False
            max_sim = sims[best] if step == 0 else np.maximum(max_sim, sims[best])


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_lambda_one_is_the_stable_relevance_order(batch, implementation):
    rng = np.random.default_rng(3)
    n = 40
    relevance = rng.integers(0, 6, (batch, n)).astype(np.float32)  # many equal relevances
    valid = rng.random((batch, n)) > 0.25
    k = valid.sum(axis=1).astype(np.int32)  # every valid candidate
    positions, scores = run(
        exact_vectors(rng, (batch, n)), relevance, valid, k, [1.0] * batch, None, implementation
    )
    for row in range(batch):
        order = np.argsort(-relevance[row], kind="stable")
        want = order[valid[row][order]]
        np.testing.assert_array_equal(positions[row, : k[row]], want)
        assert np.all(np.diff(scores[row, : k[row]]) <= 0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_lambda_one_with_equal_relevance_keeps_position_order(implementation):
    valid = np.array([[False, True, True, False, True]])
    # All valid relevances equal → all normalize to 0 → every objective ties at 0.
    positions, scores = run(
        exact_vectors(np.random.default_rng(0), (1, 5)),
        np.full((1, 5), 3.0),
        valid,
        [3],
        [1.0],
        implementation=implementation,
    )
    np.testing.assert_array_equal(positions, [[1, 2, 4]])
    np.testing.assert_array_equal(scores, [[0, 0, 0]])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_lambda_zero_picks_the_least_similar_by_hand(implementation):
    embeddings = np.float32([[[1, 0], [0.6, 0.8], [0, 1], [-0.8, 0.6]]])
    relevance = np.float32([[0, 1, 2, 3]])  # ignored at λ = 0
    # All objectives are 0 at first: the lowest position, 0, goes first.
    # cos with 0: [1, 0.6, 0, -0.8] → 3 is least similar: objective 0 − (−0.8) = 0.8.
    # Max cos with {0, 3}: 1 → max(0.6, 0) = 0.6; 2 → max(0, 0.6) = 0.6: a tie, 1 first, −0.6.
    # Last, 2: max cos with {0, 3, 1} = max(0, 0.6, 0.8) = 0.8 → −0.8.
    inputs = (embeddings, relevance, np.ones((1, 4), bool), [4], [0.0])
    for positions, scores in (run(*inputs, None, implementation), mmr_reference(*inputs)):
        np.testing.assert_array_equal(positions, [[0, 3, 1, 2]])
        np.testing.assert_allclose(scores, [[0, 0.8, -0.6, -0.8]], atol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_lambda_half_by_hand(implementation):
    embeddings = np.float32([[[1, 0], [0.6, 0.8], [0, 1]]])
    relevance = np.float32([[3, 2, 1]])  # normalized [1, 0.5, 0] → λ·rel = [0.5, 0.25, 0]
    # First 0 (0.5). Then 1: 0.25 − 0.5·0.6 = −0.05; 2: 0 − 0.5·0 = 0 → 2.
    # Then 1: max cos with {0, 2} = 0.8 → 0.25 − 0.4 = −0.15.
    inputs = (embeddings, relevance, np.ones((1, 3), bool), [3], [0.5])
    for positions, scores in (run(*inputs, None, implementation), mmr_reference(*inputs)):
        np.testing.assert_array_equal(positions, [[0, 2, 1]])
        np.testing.assert_allclose(scores, [[0.5, 0.0, -0.15]], atol=1e-6)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_padding_is_never_picked_and_its_relevance_is_ignored(batch, implementation):
    rng = np.random.default_rng(11)
    n = 30
    embeddings = exact_vectors(rng, (batch, n))
    valid = rng.random((batch, n)) > 0.5
    relevance = rng.normal(size=(batch, n)).astype(np.float32)
    relevance[~valid] = np.float32([1e30, -1e30, np.inf, np.nan])[np.arange((~valid).sum()) % 4]
    ks = np.full(batch, n, np.int32)  # more than any row's valid candidates
    lams = np.linspace(0, 1, batch, dtype=np.float32)
    positions, scores = run(embeddings, relevance, valid, ks, lams, None, implementation)
    want_positions, want_scores = mmr_reference(embeddings, relevance, valid, ks, lams)
    np.testing.assert_array_equal(positions, want_positions)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
    for row in range(batch):
        count = valid[row].sum()
        assert sorted(positions[row, :count]) == list(np.flatnonzero(valid[row]))
        assert np.all(positions[row, count:] == -1) and np.all(scores[row, count:] == 0)
        assert np.isfinite(scores[row]).all()


@pytest.mark.parametrize("lam", [1.0, 0.5])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_relevances_far_apart_normalize_without_overflow(lam, implementation):
    """3e38 − (−3e38) overflows float32: the normalization gave inf / inf = NaN, then NaN or
    infinite scores and, with no finite objective left, a pick past the last candidate."""
    relevance = np.float32([[3e38, -3e38, 0.0, 1.5e38, -1.5e38]])
    # Over [−3e38, 3e38]: normalized [1, 0, 1/2, 3/4, 1/4]; at λ = 1 that order, × λ.
    positions, scores = run(
        exact_vectors(np.random.default_rng(1), (1, 5)),
        relevance,
        np.ones((1, 5), bool),
        [5],
        [lam],
        implementation=implementation,
    )
    assert np.isfinite(scores).all()
    assert sorted(positions[0]) == [0, 1, 2, 3, 4]
    assert positions[0, 0] == 0 and scores[0, 0] == pytest.approx(lam)
    if lam == 1.0:
        np.testing.assert_array_equal(positions, [[0, 3, 2, 4, 1]])
        np.testing.assert_allclose(scores, [[1, 0.75, 0.5, 0.25, 0]], atol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_short_rows_and_wide_outputs_pad_with_minus_one(implementation):
    rng = np.random.default_rng(5)
    valid = np.array([[True] * 6, [True, False, True, False, False, False], [False] * 6])
    # Row 0 wants 2 of 6; row 1 wants 5 but has 2 valid; row 2 has none. Five columns asked.
    positions, scores = run(
        exact_vectors(rng, (3, 6)),
        rng.normal(size=(3, 6)),
        valid,
        [2, 5, 3],
        [0.5] * 3,
        5,
        implementation,
    )
    assert positions.shape == scores.shape == (3, 5)
    assert positions.dtype == np.int32 and scores.dtype == np.float32
    assert np.all(positions[0, 2:] == -1) and np.all(positions[0, :2] >= 0)
    assert sorted(positions[1, :2]) == [0, 2] and np.all(positions[1, 2:] == -1)
    assert np.all(positions[2] == -1)
    assert np.all(scores[positions == -1] == 0)


@pytest.mark.parametrize(
    ("batch", "n", "k", "max_k"), [(1, 5, 0, 0), (2, 5, -1, 2), (2, 0, 3, 3), (0, 4, 0, 0)]
)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_empty_selections_do_not_crash(batch, n, k, max_k, implementation):
    rng = np.random.default_rng(0)
    positions, scores = run(
        exact_vectors(rng, (batch, n)),
        np.zeros((batch, n)),
        np.ones((batch, n), bool),
        [k] * batch,
        [0.5] * batch,
        max_k,
        implementation,
    )
    assert positions.shape == scores.shape == (batch, max_k)
    assert np.all(positions == -1) and np.all(scores == 0)


def test_one_trace_serves_every_shape():
    fn = tf.function(mmr_select, input_signature=SIGNATURE)
    rng = np.random.default_rng(2)
    for batch, n, d in [(1, 9, 4), (4, 13, 16), (2, 3, 8)]:
        inputs = mixed_batch(rng, batch, n, min(n, 3), 0.5)
        embeddings = rng.normal(size=(batch, n, d)).astype(np.float32)
        embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
        args = (embeddings, *inputs[1:], int(inputs[3].max()))
        positions, _ = fn(*(tf.constant(a) for a in args))
        assert positions.shape == (batch, inputs[3].max())
    assert fn.experimental_get_tracing_count() == 1


def test_eager_call_matches_graph():
    inputs = mixed_batch(np.random.default_rng(4), 3, 12, 5, 0.3)
    eager = mmr_select(*(tf.constant(a) for a in inputs), tf.constant(int(inputs[3].max())))
    np.testing.assert_array_equal(eager[0].numpy(), run(*inputs)[0])


def test_saved_model_round_trip_uses_core_ops_only(tmp_path):
    module = tf.Module()
    module.mmr = graph_mmr
    tf.saved_model.save(module, str(tmp_path))
    inputs = mixed_batch(np.random.default_rng(9), 2, 20, 6, 0.7)
    loaded = tf.saved_model.load(str(tmp_path))
    positions, _ = loaded.mmr(*(tf.constant(a) for a in inputs), tf.constant(6))
    np.testing.assert_array_equal(positions.numpy(), mmr_reference(*inputs)[0])

    graph = module.mmr.get_concrete_function().graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    ops = {node.op for node in nodes}
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc", "XlaLaunch"}
    assert not any("_XlaMustCompile" in f.attr for f in graph.library.function)
