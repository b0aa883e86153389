"""The examples of docs/extending.md, written out as a user copies them, train through train.py:
the page cannot drift from what the template runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import ROOT, run_train, synthetic_overrides

# A code block whose first line (after a Hydra package header) names its file.
BLOCK = re.compile(
    r"^```(?:python|yaml)\n(?P<text>(?:# @package \S+\n)?# (?P<name>\S+).*?)^```",
    re.MULTILINE | re.DOTALL,
)


def write_examples(root: Path) -> dict[str, Path]:
    """Every code block of docs/extending.md that opens with a file name, written under `root`
    (`conf/…` into root/my_conf, the user's config folder); their paths by name."""
    written = {}
    for block in BLOCK.finditer((ROOT / "docs" / "extending.md").read_text()):
        name = block["name"]
        path = root / re.sub(r"^conf/", "my_conf/", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block["text"])  # the whole block, as a user copies it
        written[name] = path
    (root / "my_project" / "__init__.py").touch()
    return written


@pytest.mark.parametrize(
    "choices",
    [
        (
            "module=smoothing",
            "model=tiny",
            "+callbacks.ema._target_=my_project.callbacks.LossEMA",
            "+callbacks.ema.decay=0.999",
        ),
        ("experiment=wide",),
    ],
    ids=["module-network-callback", "experiment"],
)
def test_the_extending_examples_train(choices, synthetic_dir, tmp_path, monkeypatch):
    written = write_examples(tmp_path)
    assert {"my_project/nets.py", "my_project/lit.py", "my_project/callbacks.py",
            "conf/model/tiny.yaml", "conf/module/smoothing.yaml",
            "conf/experiment/wide.yaml"} <= set(written)  # fmt: skip
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    run_dir = tmp_path / "run"
    run_train(f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", *choices, "debug=fast",
              *synthetic_overrides(synthetic_dir), f"hydra.run.dir={run_dir}")  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["test_acc"] <= 1.0
    [epoch] = summary["history"]
    assert epoch["val_loss"] > 0 and epoch["train_loss"] > 0
    assert epoch["train_eval_loss"] > 0  # both networks give class scores from forward
    if "module=smoothing" in choices:
        config = (run_dir / ".hydra" / "config.yaml").read_text()
        assert "my_project.lit.LabelSmoothing" in config and "my_project.nets.TinyNet" in config
        assert "train/loss_ema" in logged_scalars(run_dir)  # the example callback's figure


def logged_scalars(run_dir: Path) -> set[str]:
    """The scalar tags of a run's TensorBoard event files, read back."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in run_dir.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags
