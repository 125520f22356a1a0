"""`recsys validate`, `recsys push` and `recsys rollback`: the served versions in
`serving.model_base`.

validate = the newest export's evaluation metrics (carried in its manifest) against
`gate.min_metrics` and, against the served version's, `gate.max_regression`. The verdict is
written as `<work_dir>/validation/blessing.json`, naming the candidate and the baseline by the
hash of their manifests (TFX calls this the blessing). A candidate that fails raises
`GateFailed`, whose message is the report of which metric failed and by how much.

push = the blessed candidate copied into the model base as the next integer version
(`serving/versions.py`: atomic, the newest `serving.keep_versions` kept), then the deployment
files. It refuses a blessing that is stale: the candidate or the served version changed since.
A candidate that is already the served version (validated again, e.g. after a gate change)
is not copied a second time.
`recsys push` alone runs both.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pipeline.core.config import Config
from pipeline.core.errors import DataError
from pipeline.core.manifest import file_sha256, read_json, write_json_atomic
from pipeline.core.staging import model_folder
from pipeline.core.timestamps import format_timestamp
from serving.deploy import write_deployment
from serving.drift import drift_checks
from serving.export import MANIFEST
from serving.gate import GateFailed, evaluate_gate
from serving.versions import latest_version, push_version, rollback, versions

__all__ = [
    "GateFailed",
    "blessing_path",
    "candidate_dir",
    "push",
    "push_blessed",
    "rollback_served",
    "served_dir",
    "validate",
]


def served_dir(config: Config) -> str:
    """`<model_base>/<model_name>`: the folder TF Serving watches.

    Raises:
      DataError: it resolves to somewhere outside `<model_base>` (`..`, a link elsewhere).
    """
    s = config.serving
    return model_folder(s.base_path(config.work_dir), s.model_name)


def candidate_dir(config: Config) -> str:
    """The newest export, the candidate for the next push.

    Raises:
      DataError: there is no export, or `<export_base>/<model_name>` resolves to somewhere
        outside `<export_base>`.
    """
    s = config.serving
    candidate = latest_version(model_folder(s.export_path(config.work_dir), s.model_name))
    if candidate is None:
        raise DataError(
            f"no export of {s.model_name!r} under {s.export_base!r}: run `recsys export`"
        )
    return candidate


def blessing_path(config: Config) -> str:
    return os.path.join(config.step_dir("validation"), "blessing.json")


def _manifest_id(version_dir: str | None) -> str | None:
    if version_dir is None:
        return None
    return file_sha256(os.path.join(version_dir, MANIFEST))


def _manifest_value(version_dir: str, key: str) -> Any:
    """A key of a version's manifest (None when the manifest or the key is absent)."""
    path = os.path.join(version_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    return read_json(path).get(key)


def _metrics(version_dir: str) -> dict[str, float] | None:
    return _manifest_value(version_dir, "metrics")


def validate(config: Config) -> dict[str, Any]:
    """Runs the gate on the newest export and writes the blessing; returns it.

    Raises:
      DataError: there is no export, or it carries no evaluation metrics while the gate
        needs them.
      GateFailed: the export does not pass the gate (the blessing says so too).
    """
    candidate = candidate_dir(config)
    metrics = _metrics(candidate) or {}
    gate = config.gate
    if not metrics and (gate.min_metrics or gate.max_regression or gate.min_ratio_to_baseline):
        raise DataError(
            f"the export {candidate!r} carries no evaluation metrics for the gate: run "
            "`recsys evaluate` before `recsys export`"
        )
    current = latest_version(served_dir(config))
    baseline = _metrics(current) if current else None
    result = evaluate_gate(
        metrics, gate.min_metrics, gate.max_regression, baseline, gate.min_ratio_to_baseline
    )
    served_profile = _manifest_value(current, "data_profile") if current else None
    candidate_profile = _manifest_value(candidate, "data_profile")
    if gate.check_drift and served_profile and candidate_profile:
        result.checks += drift_checks(candidate_profile, served_profile, gate.drift_limits())
    blessing = {
        "passed": result.passed,
        "candidate": candidate,
        "candidate_manifest_sha256": _manifest_id(candidate),
        "baseline": current,
        "baseline_manifest_sha256": _manifest_id(current),
        "checks": [vars(c) for c in result.checks],
        "report": result.report(),
        "created_at": format_timestamp(int(time.time())),
    }
    write_json_atomic(blessing_path(config), blessing)
    if not result.passed:
        raise GateFailed(result)
    return blessing


def push_blessed(config: Config) -> dict[str, Any]:
    """Pushes the candidate the last `validate` blessed; returns what was done.

    Raises:
      DataError: no blessing, a failed one, or one that no longer describes the newest export
        and the served version.
    """
    path = blessing_path(config)
    if not os.path.exists(path):
        raise DataError(f"no validation result at {path!r}: run `recsys validate` first")
    blessing = read_json(path)
    candidate = blessing["candidate"]
    if not blessing["passed"]:
        raise DataError(f"{candidate!r} failed the validation gate; it is not pushed")
    if (
        not os.path.isdir(candidate)
        or _manifest_id(candidate) != blessing["candidate_manifest_sha256"]
        or candidate != candidate_dir(config)
    ):
        raise DataError(
            f"the blessed export {candidate!r} is no longer the newest export: run "
            "`recsys validate` again"
        )
    current = latest_version(served_dir(config))
    if _manifest_id(current) != blessing["baseline_manifest_sha256"]:
        raise DataError(
            f"the served version changed since validation (now {current!r}, validated "
            f"against {blessing['baseline']!r}): run `recsys validate` again"
        )
    s = config.serving
    if current is not None and _manifest_id(current) == blessing["candidate_manifest_sha256"]:
        version, pushed = int(os.path.basename(current)), False  # validated again, not new
    else:
        version, pushed = push_version(candidate, served_dir(config), s.keep_versions), True
    write_deployment(s.base_path(config.work_dir), s)
    return {
        "pushed": os.path.join(served_dir(config), str(version)),
        "version": version,
        "new_version": pushed,
        "from": candidate,
        "gate": blessing["report"],
        "served_versions": versions(served_dir(config)),
    }


def push(config: Config) -> dict[str, Any]:
    """`validate`, then `push_blessed`: gates and pushes the newest export."""
    validate(config)
    return push_blessed(config)


def rollback_served(config: Config) -> tuple[int, int]:
    """Makes the previously pushed version the served one again: (rolled back, now served)."""
    return rollback(served_dir(config))
