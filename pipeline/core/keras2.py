"""Selects Keras 2 (tf-keras) for TensorFlow: import this before TensorFlow loads.

TensorFlow Recommenders is written against Keras 2, while TensorFlow 2.16+ binds `tf.keras` to
Keras 3 unless `TF_USE_LEGACY_KERAS` is set when TensorFlow is imported. Every entry point (the
`pipeline`, `models` and `serving` packages, the tests' conftest, each benchmark script) imports
this module before anything else, so that whichever of them a process starts from, the variable
is set in time; the processes it starts (Beam workers, fresh-process tests) inherit it.
TensorFlow's C++ log level is also read once, when TensorFlow loads, so it is quietened here too.

This module imports nothing but `os`, so that importing it first costs nothing.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
