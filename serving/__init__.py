"""recsys-pipeline package; TFRS needs Keras 2, so tf-keras is selected before TensorFlow loads."""

import pipeline.core.keras2  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)
