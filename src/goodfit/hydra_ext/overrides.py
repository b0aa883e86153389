"""Reading command-line overrides as Hydra writes them (`.hydra/overrides.yaml`, `-m` lists)."""

from __future__ import annotations


def override_key(override: str) -> str:
    """The key an override sets: `seed=1`, `+seed=1`, `++seed=1` and `~seed` all set `seed`."""
    return override.split("=", 1)[0].lstrip("+~")
