"""The small configuration the model and serving tests share (its data: tests/conftest.py)."""

from pipeline.core.config import load_config

# As `--set` overrides, so that a test can start `recsys` with the same settings.
SMALL = (
    "sample_data.n_users=40",
    "sample_data.n_items=60",
    "data.items.extra_text_fields=[brand]",
    "beam.direct_num_workers=1",
    "beam.direct_running_mode=in_memory",
    "model.embedding_dim=8",
    "model.deep_layers=[8]",
    "train.batch_size=64",
    "train.shuffle_buffer=1000",
)


def small_config(work, *overrides):
    return load_config(None, [f"work_dir={work}", *SMALL, *overrides])
