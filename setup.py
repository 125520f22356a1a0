"""recsys-pipeline: a production two-stage recommender pipeline on TensorFlow."""

import pathlib

from setuptools import find_packages, setup

# Exact versions that install together on Python 3.11 from PyPI; constraints.txt pins the rest.
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-text==2.21.1",
    "tensorflow-recommenders==0.7.7",
    "tensorflow-serving-api==2.21.0",
    "tensorboard==2.21.0",
    "transformers>=4.57,<5",
    "safetensors>=0.4",
    "apache-beam==2.77.0",
    "google-crc32c>=1.5",
    "pyarrow>=14",
    "pandas>=2",
    "numpy>=1.26",
    "pyyaml>=6",
    "tqdm>=4.66",
    "matplotlib>=3.8",
]

setup(
    name="recsys-pipeline",
    version="0.1.0",
    description=(
        "Logs and item text to a two-stage TFRS recommender (retrieval + ranking, BERT text, "
        "MMR diversity) served by stock TensorFlow Serving."
    ),
    long_description=pathlib.Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["pipeline", "pipeline.*", "models", "models.*", "serving", "serving.*"]
    ),
    package_data={"": ["*.yaml", "*.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "dev": ["pytest>=8", "pytest-xdist>=3.8", "hypothesis>=6", "ruff==0.17.6"],
        "gcp": ["apache-beam[gcp]==2.77.0"],
    },
    entry_points={"console_scripts": ["recsys=pipeline.orchestrate.cli:main"]},
)
