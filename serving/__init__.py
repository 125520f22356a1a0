"""recsys-pipeline package; TFRS needs Keras 2, so tf-keras is selected before TensorFlow loads."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
