"""goodfit's Optuna sweeper for Hydra (`hydra/sweeper=goodfit_optuna`), over Optuna's ask/tell
API. Hydra finds it in the `hydra_plugins` namespace package, which goodfit installs."""
