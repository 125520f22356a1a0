"""Keras 2 for TensorFlow: importing any of the packages selects it, in a process whose
environment does not, and imports nothing heavy doing so."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

_IMPORT = """
import json, os, sys
import {package}
print(json.dumps({{
    "variable": os.environ.get("TF_USE_LEGACY_KERAS"),
    "heavy": sorted({{"numpy", "tensorflow", "tf_keras", "keras"}} & set(sys.modules)),
}}))
"""


def _fresh(script: str):
    """The JSON object `script` prints last, run in a new interpreter without
    TF_USE_LEGACY_KERAS in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", ["pipeline", "models", "serving", "pipeline.core.keras2"])
def test_each_package_sets_the_variable_and_loads_nothing_heavy(package):
    assert _fresh(_IMPORT.format(package=package)) == {"variable": "1", "heavy": []}


def test_tf_keras_is_keras_2_after_a_package_import():
    script = (
        "import json, models, tensorflow as tf; "
        "print(json.dumps(tf.keras.__name__))"  # Keras 3 would be "keras._tf_keras.keras"
    )
    assert _fresh(script).startswith("tf_keras")
