"""Lightning's ModelCheckpoint, with its state key computed once, and a run folder that was moved
with its checkpoints resumed as in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


class ModelCheckpoint(LightningModelCheckpoint):
    """Behaves exactly as Lightning's ModelCheckpoint (same arguments, same files, same state in
    checkpoints), with two differences.

    Its `state_key` is computed once. Lightning names every callback hook call with an f-string
    of the callback's `state_key`, and ModelCheckpoint's key is the `repr` of a dict of its
    settings, rebuilt on each call: about ten times a training step, the largest share of
    Lightning's per-step callback cost at small batches on a CPU. The settings it is made of do
    not change after construction.

    A checkpoint written in another folder whose files are all found under the same names in
    this callback's folder (a run folder moved or copied, then resumed) restores as if it had
    been written here. Lightning compares the saved `dirpath` with the current one and, when
    they differ, drops the best score and keeps the old absolute `best_model_path`: the next
    epoch would then count as the best whatever its score, and testing would read the old
    folder's file (or fail when it is gone)."""

    @property
    def state_key(self) -> str:
        key = self.__dict__.get("_goodfit_state_key")
        if key is None:
            key = super().state_key
            self.__dict__["_goodfit_state_key"] = key
        return key

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(self._as_written_here(state_dict))

    def _as_written_here(self, state: dict[str, Any]) -> dict[str, Any]:
        """`state` with its folder's paths moved to this callback's folder, when every file it
        names is there; otherwise `state` unchanged (Lightning's own handling)."""
        old, new = state.get("dirpath"), self.dirpath
        if not old or not new or Path(old) == Path(new):
            return state
        named = [state.get(key) for key in _PATH_KEYS] + list(state.get("best_k_models") or {})
        moved = {path: _same_file_in(path, old, new) for path in named if path}
        if not moved or None in moved.values():
            return state
        here = {**state, "dirpath": new}
        for key in _PATH_KEYS:
            if state.get(key):
                here[key] = moved[state[key]]
        here["best_k_models"] = {moved[p]: v for p, v in (state.get("best_k_models") or {}).items()}
        return here


def _same_file_in(path: str, old_folder: str, new_folder: str) -> str | None:
    """`path` (a file in `old_folder`) under the same name in `new_folder`, if it is there."""
    try:
        relative = Path(path).relative_to(old_folder)
    except ValueError:
        return None
    candidate = Path(new_folder) / relative
    return str(candidate) if candidate.is_file() else None
