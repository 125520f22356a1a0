"""`recsys push` and `recsys rollback`: the served versions in `serving.model_base`.

push = the newest export → the validation gate (its evaluation metrics, carried in the export's
manifest, against the served version's) → copied into the model base as the next integer
version (`serving/versions.py`: atomic, the newest `serving.keep_versions` kept) → deployment
files written there. A version that fails the gate is not pushed: `GateFailed` carries the
report of which metric failed and by how much, and the served versions stay as they were.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.config import Config
from pipeline.errors import DataError, RecsysError
from pipeline.gate import GateResult, evaluate_gate
from pipeline.manifest import read_json
from serving.deploy import write_deployment
from serving.export import MANIFEST
from serving.versions import latest_version, push_version, rollback, versions

__all__ = ["GateFailed", "push", "rollback_served", "served_dir"]


class GateFailed(RecsysError):
    """The candidate failed the validation gate; the message is the gate's report."""

    def __init__(self, result: GateResult):
        super().__init__(result.report())
        self.result = result


def served_dir(config: Config) -> str:
    """`<model_base>/<model_name>`: the folder TF Serving watches."""
    return os.path.join(config.serving.base_path(config.work_dir), config.serving.model_name)


def _metrics(version_dir: str) -> dict[str, float] | None:
    path = os.path.join(version_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    return read_json(path).get("metrics")


def push(config: Config) -> dict[str, Any]:
    """Gates and pushes the newest export; returns what was done.

    Raises:
      DataError: there is no export, or it carries no evaluation metrics while the gate
        needs them.
      GateFailed: the export does not pass the gate.
    """
    s = config.serving
    candidate = latest_version(os.path.join(s.export_path(config.work_dir), s.model_name))
    if candidate is None:
        raise DataError(
            f"no export of {s.model_name!r} under {s.export_base!r}: run `recsys export`"
        )
    metrics = _metrics(candidate) or {}
    gate = config.gate
    if not metrics and (gate.min_metrics or gate.max_regression):
        raise DataError(
            f"the export {candidate!r} carries no evaluation metrics for the gate: run "
            "`recsys evaluate` before `recsys export`"
        )
    current = latest_version(served_dir(config))
    baseline = _metrics(current) if current else None
    result = evaluate_gate(metrics, gate.min_metrics, gate.max_regression, baseline)
    if not result.passed:
        raise GateFailed(result)
    version = push_version(candidate, served_dir(config), s.keep_versions)
    write_deployment(s.base_path(config.work_dir), s)
    return {
        "pushed": os.path.join(served_dir(config), str(version)),
        "version": version,
        "from": candidate,
        "gate": result.report(),
        "served_versions": versions(served_dir(config)),
    }


def rollback_served(config: Config) -> tuple[int, int]:
    """Makes the previously pushed version the served one again: (rolled back, now served)."""
    return rollback(served_dir(config))
