"""Read an offline W&B run back from its `run-*.wandb` file, as `wandb sync` would: a LevelDB
log (32 KiB blocks of records with a 7-byte header) of W&B's protobuf `Record` messages."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7  # checksum (4 bytes), length (2), kind (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    found, pos, pending = [], 7, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        body = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            found.append(wandb_internal_pb2.Record.FromString(pending + body))
            pending = b""
        elif kind in (FIRST, MIDDLE):
            pending += body
    return found


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def offline_run(run_dir: Path) -> dict[str, Any]:
    """{config, summary, history}: the run's config and summary as last updated, and each
    history row logged."""
    [path] = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({_key(u): json.loads(u.value_json) for u in record.config.update})
        elif kind == "summary":
            summary.update({_key(u): json.loads(u.value_json) for u in record.summary.update})
        elif kind == "history":
            history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
    return {"config": config, "summary": summary, "history": history}
