"""Runs grouped by their settings other than the seed, and what the seeds say.

A group is the runs whose overrides are the same once `seed=` is set aside (`experiment=good`
with seeds 1 to 5). For each group: mean, standard deviation and the Student-t 95% confidence
interval of the mean of test accuracy, test loss and the generalization gap (and of a study's
own figures, such as the transfer study's gain over training from scratch), and the verdict
counts. For each pair of groups: the difference of mean test accuracy with its 95% interval and
a p-value, from a paired t-test when both groups ran the same seeds and Welch's t-test
otherwise. scipy.stats does the statistics. Failed runs are listed and left out.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from goodfit.hydra_ext.overrides import override_key
from goodfit.records.runs import RunRecord

METRICS = ("test_acc", "test_loss", "generalization_gap")
# Figures reported for every group when some run's summary.json has them: the gap measured in
# eval mode (callbacks.train_eval), and a study's own (experiment=finetune: the from-scratch
# baseline's test accuracy and the gain over it).
STUDY_METRICS = ("eval_mode_gap", "scratch_test_acc", "transfer_gain")
LEVEL = 0.95  # confidence level of every interval
ALPHA = 1 - LEVEL  # a difference with p below this is "beyond seed noise"
# Without .hydra/overrides.yaml, a run's settings are these summary.json fields (first found).
FALLBACK_KEYS = ("experiment", "name")
PAIRED, WELCH = "paired t", "Welch t"
NO_OVERRIDES = "(no overrides)"  # the name of a group of runs of the default config


def settings(record: RunRecord) -> list[str]:
    """The run's overrides other than `seed`; without overrides, its experiment (or name)."""
    if record.overrides is not None:
        return [o for o in record.overrides if override_key(o) != "seed"]
    for key in FALLBACK_KEYS:
        if record.get(key) is not None:
            return [f"{key}={record.get(key)}"]
    return []


@dataclass
class Group:
    """Runs with the same settings: `runs` completed ones (the statistics), `failed` the rest."""

    name: str
    runs: list[RunRecord] = field(default_factory=list)
    failed: list[RunRecord] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        """The metric's finite values over the completed runs (a run without it is skipped)."""
        values = (r.get(metric) for r in self.runs)
        return [float(v) for v in values if v is not None and math.isfinite(float(v))]

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    def classes(self) -> frozenset[str] | None:
        """The classes its runs were tested on (summary.json's `per_class`); None when a run
        does not say, or the runs differ."""
        tested = {frozenset(r.get("per_class") or ()) for r in self.runs}
        if len(tested) != 1:
            return None
        return next(iter(tested)) or None  # empty: no run says

    def verdicts(self) -> dict[str, int]:
        return dict(Counter(str(r.get("verdict")) for r in self.runs).most_common())


def group_runs(records: list[RunRecord]) -> list[Group]:
    """Groups in the order of their first job in the sweep (else of their first folder), named
    by the settings that tell them apart (all of its settings when there is one group, or when
    a group's settings are all shared)."""
    order = sorted(records, key=lambda r: (r.job_num is None, r.job_num or 0, str(r.folder)))
    keyed: dict[tuple[str, ...], list[RunRecord]] = {}
    named: dict[tuple[str, ...], list[str]] = {}
    for record in order:
        items = settings(record)
        key = tuple(sorted(items))
        keyed.setdefault(key, []).append(record)
        named.setdefault(key, items)
    shared = set.intersection(*(set(k) for k in keyed)) if len(keyed) > 1 else set()
    groups = []
    for key, members in keyed.items():
        own = [item for item in named[key] if item not in shared] or named[key]
        name = ",".join(own) or NO_OVERRIDES
        group = Group(name)
        for record in sorted(members, key=lambda r: (r.seed is None, r.seed or 0, r.label)):
            (group.failed if record.failed else group.runs).append(record)
        groups.append(group)
    return groups


def describe(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and the Student-t 95% interval of the mean; with one
    value, no spread and no interval (None); with none, all None."""
    import numpy as np
    from scipy import stats

    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None}
    mean = float(np.mean(values))
    if n == 1:
        return {"mean": mean, "std": None, "ci95": None}
    std = float(np.std(values, ddof=1))
    if std == 0.0:  # identical values: the interval is the value (scipy would give nan)
        return {"mean": mean, "std": 0.0, "ci95": [mean, mean]}
    low, high = stats.t.interval(LEVEL, n - 1, loc=mean, scale=std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci95": [float(low), float(high)]}


def same_seeds(a: Group, b: Group) -> bool:
    """Both groups ran the same distinct, known seeds: their runs pair up seed by seed."""
    seeds_a, seeds_b = a.seeds, b.seeds
    known = None not in seeds_a and None not in seeds_b
    return known and len(set(seeds_a)) == len(seeds_a) and sorted(seeds_a) == sorted(seeds_b)


def _by_seed(group: Group) -> list[float]:
    return [float(r.get("test_acc")) for r in sorted(group.runs, key=lambda r: r.seed)]


def compare(a: Group, b: Group) -> dict[str, Any]:
    """a − b in mean test accuracy: the difference, its 95% interval, the p-value and the test
    (None for interval, p-value and test when either group has fewer than two runs)."""
    import numpy as np
    from scipy import stats

    x, y = a.values("test_acc"), b.values("test_acc")
    # Accuracies on different classes (a study's source and target tasks) are not comparable.
    other_classes = None not in (a.classes(), b.classes()) and a.classes() != b.classes()
    diff = float(np.mean(x) - np.mean(y)) if x and y and not other_classes else None
    result = {"a": a.name, "b": b.name, "test_acc_diff": diff, "ci95": None, "p_value": None,
              "test": None, "n_a": len(x), "n_b": len(y),
              "other_classes": other_classes}  # fmt: skip
    if len(x) < 2 or len(y) < 2 or other_classes:
        return result
    paired = same_seeds(a, b)
    if paired:
        x, y = _by_seed(a), _by_seed(b)
    spread = np.ptp(np.subtract(x, y)) if paired else max(np.ptp(x), np.ptp(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nearly identical data: handled below
        test = stats.ttest_rel(x, y) if paired else stats.ttest_ind(x, y, equal_var=False)
        low, high = test.confidence_interval(LEVEL)
    p_value, ci = float(test.pvalue), [float(low), float(high)]
    if spread == 0.0 or not math.isfinite(p_value) or not all(map(math.isfinite, ci)):
        # No spread at all: the difference is exact (p = 1 when it is zero, else 0).
        p_value, ci = (1.0 if diff == 0.0 else 0.0), [diff, diff]
    return {**result, "ci95": ci, "p_value": p_value, "test": PAIRED if paired else WELCH}


def _short_names(groups: list[Group]) -> dict[str, str]:
    """`experiment=good` → `good` when every group is one value of the same key."""
    parts = [g.name.split("=", 1) for g in groups]
    if all(len(p) == 2 and "," not in g.name for p, g in zip(parts, groups, strict=True)) and (
        len({p[0] for p in parts}) == 1
    ):
        return {g.name: p[1] for p, g in zip(parts, groups, strict=True)}
    return {g.name: g.name for g in groups}


def _p_text(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def sentence(comparison: dict[str, Any], short: dict[str, str]) -> str:
    """One plain sentence: the difference, its interval, the p-value and what they mean."""
    a, b = short[comparison["a"]], short[comparison["b"]]
    diff, n_a, n_b = comparison["test_acc_diff"], comparison["n_a"], comparison["n_b"]
    if comparison.get("other_classes"):
        return f"{a} − {b}: not compared (their runs were tested on different classes)"
    if diff is None:
        return f"{a} − {b}: no completed runs to compare"
    head = f"{a} − {b} = {diff:+.4f}"
    if comparison["test"] is None:
        runs = f"{n_a} and {n_b} runs"
        return f"{head} ({runs}): no interval or test (they need two runs or more in each group)"
    low, high = comparison["ci95"]
    p = comparison["p_value"]
    if comparison["test"] == PAIRED:
        seeds = f"{n_a} seeds"
    else:
        seeds = f"{n_a} seeds each" if n_a == n_b else f"{n_a} and {n_b} seeds"
    text = f"{head} ({low:+.4f} to {high:+.4f}), {_p_text(p)} ({comparison['test']}, {seeds})"
    if p < ALPHA:
        return f"{text}: {'better' if diff > 0 else 'worse'} beyond seed noise"
    return f"{text}: not distinguishable from seed noise with {seeds}"


def reported_metrics(groups: list[Group]) -> tuple[str, ...]:
    """METRICS, then each of STUDY_METRICS that some completed run has."""
    return METRICS + tuple(m for m in STUDY_METRICS if any(g.values(m) for g in groups))


def study(groups: list[Group]) -> dict[str, Any]:
    """report.json's content: the metrics described, each group's figures and each pair's
    comparison."""
    short = _short_names(groups)
    metrics = reported_metrics(groups)
    comparisons = []
    for a, b in itertools.combinations(groups, 2):
        comparison = compare(a, b)
        comparisons.append({**comparison, "sentence": sentence(comparison, short)})
    return {
        "metrics": list(metrics),
        "groups": [
            {
                "name": g.name,
                "runs": len(g.runs),
                **{metric: describe(g.values(metric)) for metric in metrics},
                "verdicts": g.verdicts(),
                "seeds": g.seeds,
                "failed": [
                    {"seed": r.seed, "folder": r.label, "reason": r.reason} for r in g.failed
                ],
            }
            for g in groups
        ],
        "comparisons": comparisons,
    }
