"""Test a trained model: `python eval.py ckpt_path=<checkpoint or run folder>`."""

# ruff: noqa: E402  (the imports come after Ctrl-C is set up)
import signal

# Ctrl-C while Python imports and Hydra composes the config stops the process at once, without a
# traceback; the task restores Python's KeyboardInterrupt when it starts (hydra_ext/entry.py).
signal.signal(signal.SIGINT, signal.SIG_DFL)

from pathlib import Path

import hydra
from omegaconf import DictConfig

import goodfit.hydra_ext.resolvers  # noqa: F401  (registers the resolvers the configs use)
from goodfit.hydra_ext.entry import report_user_errors
from goodfit.hydra_ext.key_hints import hint_unknown_keys

ROOT = Path(__file__).resolve().parent


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from goodfit.tasks.evaluate import run

    run(cfg)


if __name__ == "__main__":
    with hint_unknown_keys(ROOT / "conf", "eval"):
        main()
