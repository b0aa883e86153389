"""Train a model: `python train.py experiment=good`, `python train.py -m optimizer=sgd,rmsprop`."""

# ruff: noqa: E402  (the imports come after Ctrl-C is set up)
import signal

# Ctrl-C while Python imports and Hydra composes the config stops the process at once, without a
# traceback; the task restores Python's KeyboardInterrupt when it starts (hydra_ext/entry.py).
signal.signal(signal.SIGINT, signal.SIG_DFL)

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import goodfit.hydra_ext.resolvers  # noqa: F401  (registers the resolvers the configs use)
from goodfit.hydra_ext.entry import report_user_errors
from goodfit.hydra_ext.key_hints import hint_unknown_keys

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("GOODFIT_ROOT", str(ROOT))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@report_user_errors
def main(cfg: DictConfig) -> float | None:
    from goodfit.tasks.cli import train_command

    # The value a Hydra sweeper (e.g. Optuna) optimises.
    return train_command(cfg).get("best_val_acc")


if __name__ == "__main__":
    with hint_unknown_keys(ROOT / "conf", "train"):
        main()
