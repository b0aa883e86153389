"""Lightning callbacks a run can list in conf/callbacks/ (all of them are listed there)."""

from goodfit.callbacks.augmentation_preview import AugmentationPreview
from goodfit.callbacks.checkpoint import ModelCheckpoint
from goodfit.callbacks.divergence import StopOnDivergence
from goodfit.callbacks.history import EpochHistory
from goodfit.callbacks.interruption import RunInterrupted, StopOnSignal
from goodfit.callbacks.learning_rate import EpochLearningRate
from goodfit.callbacks.model_summary import ModelSummary
from goodfit.callbacks.optuna_pruning import OptunaPruning
from goodfit.callbacks.progress import ThrottledRichProgressBar
from goodfit.callbacks.random_state import RandomStateInCheckpoint
from goodfit.callbacks.train_eval import TrainSetEvaluation

__all__ = [
    "AugmentationPreview",
    "EpochHistory",
    "EpochLearningRate",
    "ModelCheckpoint",
    "ModelSummary",
    "OptunaPruning",
    "RandomStateInCheckpoint",
    "RunInterrupted",
    "StopOnDivergence",
    "StopOnSignal",
    "ThrottledRichProgressBar",
    "TrainSetEvaluation",
]
