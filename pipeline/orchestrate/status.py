"""`recsys status`: what the last run did, what is served, and how to serve it.

Reads only the records and manifests the steps leave (no TensorFlow), so it answers at once,
also while a run holds the work directory.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipeline.core.config import Config
from pipeline.core.steps import STEPS
from pipeline.core.version_dirs import latest_version, versions

__all__ = ["status_report"]

_GATE_METRICS = ("recall@50", "ndcg@10", "cold_start_recall@50", "rmse")


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _step_lines(config: Config) -> list[str]:
    folder = os.path.join(config.work_dir, "runs")
    lines = [f"Steps ({folder}):"]
    for step in STEPS:
        record = _read(os.path.join(folder, f"{step}.json"))
        if record is None:
            continue
        status = record.get("status", "?")
        when = record.get("checked_at") if status == "skipped" else record.get("finished")
        detail = record.get("error") if status == "failed" else None
        if status in ("succeeded", "skipped") and record.get("seconds") is not None:
            detail = f"last ran {record['seconds']:.0f} s"
        lines.append(
            f"  {step:<12} {status:<10} {when or record.get('started', '')}"
            + (f"  ({detail})" if detail else "")
        )
    return lines if len(lines) > 1 else ["Steps: no `recsys run` in this work_dir yet"]


def _metrics_text(manifest: dict[str, Any] | None) -> str:
    metrics = (manifest or {}).get("metrics") or {}
    shown = [f"{k} {metrics[k]:.4f}" for k in _GATE_METRICS if k in metrics]
    return f" ({', '.join(shown)})" if shown else ""


def status_report(config: Config, config_path: str | None = None) -> str:
    """The report `recsys status` prints and `recsys run` ends with."""
    s = config.serving
    lines = _step_lines(config)
    export = latest_version(os.path.join(s.export_path(config.work_dir), s.model_name))
    if export:
        manifest = _read(os.path.join(export, "manifest.json"))
        lines.append(f"Newest export: {export}{_metrics_text(manifest)}")
    base = s.base_path(config.work_dir)
    served = os.path.join(base, s.model_name)
    current = latest_version(served)
    if current:
        numbers = ", ".join(str(v) for v in versions(served))
        lines.append(f"Served:        {current} (versions kept: {numbers})")
    blessing = _read(os.path.join(config.step_dir("validation"), "blessing.json"))
    if blessing:
        verdict = "passed" if blessing.get("passed") else "FAILED"
        lines.append(f"Last gate:     {verdict} for {blessing.get('candidate')}")
    report = os.path.join(config.step_dir("evaluation"), "report.md")
    if os.path.exists(report):
        lines.append(f"Report:        {report}")
    frontier = os.path.join(config.step_dir("evaluation"), "diversity_frontier.png")
    if os.path.exists(frontier):
        lines.append(f"Diversity:     {frontier}")
    if current:
        flag = f" --config {config_path}" if config_path else ""
        lines += [
            f"Serve it:      cd {base} && docker compose up   "
            f"(TF Serving: gRPC :{s.grpc_port}, REST :{s.rest_port})",
            f"Ask it:        recsys recommend{flag} --user <id> "
            f"--server http://localhost:{s.rest_port}",
        ]
    return "\n".join(lines)
