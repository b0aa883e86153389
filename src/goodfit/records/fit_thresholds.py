"""The thresholds of the fit verdict (`conf/diagnosis/default.yaml`), checked as a config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from goodfit.runtime.errors import ConfigError


@dataclass(frozen=True)
class Thresholds:
    """When a run counts as overfitting, underfitting or too poorly validated to judge.
    The defaults equal conf/diagnosis/default.yaml (a test keeps them equal)."""

    max_relative_gap: float = 0.10
    max_val_loss_rise: float = 0.05
    trend_window: int = 3
    falling_rate: float = 0.002
    underfit_rate: float = 0.03
    max_val_ci_width: float = 0.04
    chance_margin: float = 0.1

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, prefix: str = "diagnosis"
    ) -> Thresholds:
        """Thresholds from a config mapping; an unknown key or a bad value is a ConfigError."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        problems = [f"{prefix}.{key} is not a known threshold (known: {', '.join(sorted(known))})"
                    for key in values if key not in known]  # fmt: skip
        for key, value in values.items():
            if key not in known:
                continue
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key == "trend_window":
                if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                    problems.append(
                        f"{prefix}.{key}={value!r} is not allowed: must be an integer >= 1"
                    )
            elif not (is_number and value >= 0):
                problems.append(f"{prefix}.{key}={value!r} is not allowed: must be a number >= 0")
        if problems:
            raise ConfigError("Invalid configuration:\n  " + "\n  ".join(problems))
        return cls(**{k: v for k, v in values.items() if k in known})
