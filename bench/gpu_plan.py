"""The GPU check's plan: what runs, on a GPU or dry on the CPU, and the time each part gets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Each section's share of the budget, in running order.
SHARES = {"tests": 0.08, "mlp": 0.34, "experiments": 0.24, "convnets": 0.34}


@dataclass
class Plan:
    """What runs: the whole grid on a GPU; dry, one run of each kind on tiny data."""

    dry: bool
    budget: float
    trainer: str  # the trainer config group
    mlp: list[tuple[int, str, str]]  # (batch size, precision, path), cheapest first
    mlp_epochs: int
    experiments: list[str]
    convnets: list[tuple[str, bool]]  # (experiment, model.compile)
    extra: list[str] = field(default_factory=list)  # overrides for every run
    convnet_extra: list[str] = field(default_factory=list)
    # A run is skipped when its section has less than `min_run` seconds left. It is stopped
    # at an epoch's end once its share of the section (at least `min_share` seconds, which
    # covers start-up and a compilation) would be passed, keeping `test_reserve` seconds for
    # testing and exiting; it is killed only at the section's end.
    min_run: float = 15.0
    min_share: float = 25.0
    test_reserve: float = 6.0

    @classmethod
    def for_mode(cls, dry: bool, budget: float) -> Plan:
        if dry:  # each section's code, on the CPU: the paths the full grid only multiplies
            return cls(True, budget, "cpu", [(64, "bf16-mixed", "perf=fast")], 1, ["good_fast"],
                       [("cnn", True)], ["trainer.max_epochs=1"],
                       # enough steps for the one-cycle schedule on tiny data
                       convnet_extra=["datamodule.batch_size=64"], min_run=5.0,
                       min_share=0.0, test_reserve=2.0)  # fmt: skip
        grid = [(b, p, path) for b in (4096, 512, 32) for p in ("32-true", "bf16-mixed")
                for path in ("perf=default", "perf=fast")]  # fmt: skip
        convnets = [("cnn", False), ("cnn", True), ("resnet", False), ("resnet", True)]
        return cls(False, budget, "gpu", grid, 3, ["good_fast", "good"], convnets)


def settings(environ: dict[str, str]) -> tuple[bool, float]:
    """GPU_CHECK_DRY and GPU_CHECK_BUDGET, checked."""
    dry = environ.get("GPU_CHECK_DRY", "")
    if dry not in ("", "0", "1"):
        raise SystemExit(f"GPU_CHECK_DRY={dry}: expected 1 (dry run on the CPU) or 0")
    budget = environ.get("GPU_CHECK_BUDGET") or ("3600" if dry == "1" else "450")
    try:
        seconds = float(budget)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise SystemExit(f"GPU_CHECK_BUDGET={budget}: expected seconds > 0 (default 450)")
    return dry == "1", seconds


class Clock:
    """The check's deadline, split among sections by SHARES and among runs by weight."""

    def __init__(self, budget: float, start: float) -> None:
        self.budget, self.end = budget, start + budget

    def section_end(self, name: str) -> float:
        later = list(SHARES)[list(SHARES).index(name) + 1 :]
        return self.end - self.budget * sum(SHARES[n] for n in later)

    def run_end(
        self, section: str, weight: float, weights_left: float, at_least: float = 0.0
    ) -> float:
        """When this run's share of what is left of its section ends: `weight` of
        `weights_left`, at least `at_least` seconds, never past the section's end."""
        now, end = time.time(), self.section_end(section)
        share = max(0.0, end - now) * weight / weights_left
        return min(end, now + max(share, at_least))
