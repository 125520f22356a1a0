"""The numeric half of the serving module: the relevance scale MMR receives. (The core's
retrieval, MMR and explanations run in tests/serving/test_module.py, over a trained model.)"""

import numpy as np
import tensorflow as tf

from serving.core import relative_likelihood


def test_relative_likelihood_is_one_for_the_best_valid_candidate():
    scores = tf.constant([[2.0, 1.0, 5.0], [0.0, -1.0, -3.0]])
    valid = tf.constant([[True, True, False], [True, True, True]])
    out = relative_likelihood(scores, valid).numpy()
    np.testing.assert_allclose(out[0], [1.0, np.exp(-1.0), 0.0], rtol=1e-6)
    np.testing.assert_allclose(out[1], [1.0, np.exp(-1.0), np.exp(-3.0)], rtol=1e-6)
