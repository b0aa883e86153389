"""`python train.py --help` and `python eval.py --help` say what goodfit is and how to start."""

from __future__ import annotations

from .conftest import ROOT, run_train


def test_train_help_gives_the_first_commands_then_the_groups():
    out = run_train("--help").stdout
    assert out.startswith("goodfit train.py: train an image classifier")
    assert "python train.py experiment=good debug=fast   a smoke run in seconds" in out
    assert out.index("a trained model\n\n== Configuration groups ==") > 0  # a blank line
    assert "optimizer: adam, adamw, rmsprop, sgd, sgd_momentum, sgd_nesterov" in out
    assert "is powered by Hydra" not in out
    assert out.rstrip().endswith("Every group and key is explained in README.md and docs/.")


def test_eval_help_lists_its_own_keys_not_trainings_groups():
    out = run_train("--help", script=ROOT / "eval.py").stdout
    assert out.startswith("goodfit eval.py: test a trained model")
    assert "== Keys ==\nckpt_path: ???\ndata_dir: null\naccelerator: null\n" in out
    assert "Configuration groups" not in out and "optimizer" not in out
