"""recsys-pipeline package; TFRS needs Keras 2, so tf-keras is selected before TensorFlow loads."""

from pipeline.core import keras2  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)
