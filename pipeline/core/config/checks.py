"""The collector every section's `validate` reports to, so one ConfigError names every bad field.

A config with several mistakes is fixed in one edit rather than one rerun per mistake: the
checks only record, and `pipeline.core.config.root.validate` raises once at the end.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.errors import ConfigError

__all__ = ["Problems"]


class Problems:
    """The semantic errors found so far, each as `<dotted field> <rule> (got <value>)`."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, ok: bool, name: str, value: Any, rule: str) -> None:
        """Records that field `name` breaks `rule` with `value`, unless `ok`."""
        if not ok:
            self.messages.append(f"{name} {rule} (got {value!r})")

    def choice(self, name: str, value: Any, allowed: tuple[str, ...]) -> None:
        """Records field `name` unless its `value` is one of `allowed`."""
        self.check(value in allowed, name, value, f"must be one of {', '.join(allowed)}")

    def raise_if_any(self) -> None:
        """Raises one ConfigError naming every recorded error, in the order they were found."""
        if self.messages:
            raise ConfigError("invalid config: " + "; ".join(self.messages))
