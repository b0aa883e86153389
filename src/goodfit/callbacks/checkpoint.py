"""Lightning's ModelCheckpoint, with its state key computed once."""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Behaves exactly as Lightning's ModelCheckpoint (same arguments, same files, same state in
    checkpoints). Why it exists: Lightning names every callback hook call with an f-string of
    the callback's `state_key`, and ModelCheckpoint's key is the `repr` of a dict of its settings,
    rebuilt on each call: about ten times a training step, the largest share of Lightning's
    per-step callback cost at small batches on a CPU. The settings it is made of do not change
    after construction, so it is computed once."""

    @property
    def state_key(self) -> str:
        key = self.__dict__.get("_goodfit_state_key")
        if key is None:
            key = super().state_key
            self.__dict__["_goodfit_state_key"] = key
        return key
