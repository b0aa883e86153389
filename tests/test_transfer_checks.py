"""The fine-tuning study checks every step's config before its first step trains: a bad value
for the fine-tuning run, the head, the pretraining run or the from-scratch run is refused at
once, by key and step, with no pretraining done."""

from __future__ import annotations

import pytest

from .conftest import run_train


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=-1", "optimizer.lr=-1 is not allowed: must be a finite number > 0"),
        (
            "transfer.head.optimizer.lr=-2",
            "transfer.head.optimizer (torch.optim.Adam) refuses its values: Invalid learning rate",
        ),
        (
            "+transfer.pretrain={optimizer:{lr:-1}}",
            "In the pretraining run (experiment=pretrain with transfer.pretrain): Invalid "
            "configuration:\n  optimizer.lr=-1 is not allowed",
        ),
        (
            "+transfer.scratch={optimizer:{weight_decay:-1}}",
            "In the from-scratch run (transfer.scratch merged over this config): optimizer "
            "(torch.optim.AdamW) refuses its values: Invalid weight_decay value: -1",
        ),
    ],  # fmt: skip
)
def test_a_bad_value_for_any_step_stops_the_study_before_pretraining(tmp_path, override, message):
    run_dir = tmp_path / "study"
    result = run_train("experiment=finetune", "debug=fast", override, f"hydra.run.dir={run_dir}",
                       check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert message in output and "Traceback" not in output
    assert "Pretraining the backbone" not in output
    assert not (run_dir / "pretrain").exists() and not (run_dir / "summary.json").exists()
