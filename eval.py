"""Test a trained model: `python eval.py ckpt_path=<checkpoint or run folder>`."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

import goodfit.resolvers  # noqa: F401  (registers the resolvers the configs use)
from goodfit.errors import report_user_errors
from goodfit.overrides import hint_unknown_keys

ROOT = Path(__file__).resolve().parent


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from goodfit.eval import run

    run(cfg)


if __name__ == "__main__":
    with hint_unknown_keys(ROOT / "conf", "eval"):
        main()
