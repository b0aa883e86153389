"""The verdict's labels, and the findings a diagnosis collects: labels and the sentences
behind them (`goodfit.records.diagnosis`)."""

from __future__ import annotations

GOOD_FIT = "good fit"
OVERFITTING = "overfitting"
UNDERFITTING = "underfitting"
UNRELIABLE_VALIDATION = "unreliable validation"
# One epoch gives no trend: whether the model had more to learn is unknown.
TOO_SHORT = "too short to judge"
# No training loss was recorded at all (a module of one's own that logs none).
NOT_JUDGED = "not judged"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


class Findings:
    """The labels and the sentences behind them, in the order the checks ran."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.reasons: list[str] = []

    def add(self, reason: str, label: str | None = None) -> None:
        if label is not None and label not in self.labels:
            self.labels.append(label)
        self.reasons.append(reason)
