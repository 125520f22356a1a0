"""Which process of a multi-worker training run is the chief, read from TF_CONFIG.

The command line must know before TensorFlow loads (it decides whether `recsys train` takes
the work directory's lock, and the CLI imports no TensorFlow until a step runs), so this reads
TF_CONFIG itself, by TensorFlow's rule (`multi_worker_util.is_chief`, which
`models.distributed.writes_shared` follows through Keras): the task of type "chief" (or
"evaluator"), else worker 0 of a cluster without a chief. Its test holds it to TensorFlow's
answer.
"""

from __future__ import annotations

import json

from pipeline.core.errors import ConfigError

__all__ = ["is_chief"]


def is_chief(tf_config: str | None) -> bool:
    """Whether the process with this TF_CONFIG (the variable's value; None or empty when unset)
    is the chief of its cluster. Without a cluster a process trains alone, its own chief.

    Raises:
      ConfigError: TF_CONFIG is not JSON, or it names a cluster but no task type and index.
    """
    if not tf_config:
        return True
    try:
        spec = json.loads(tf_config)
        cluster = spec.get("cluster") or {}
        if not cluster:
            return True  # TensorFlow then trains on this machine alone
        kind, index = spec["task"]["type"], int(spec["task"]["index"])
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ConfigError(
            f"TF_CONFIG must be JSON whose task has a type and an index (got {tf_config!r}; "
            f"{type(e).__name__}: {e})"
        ) from None
    if kind in ("chief", "evaluator"):
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster
