"""The one way goodfit writes a file: to a temporary file in the same folder, then renamed over
the target, so a crash or a full disk never leaves a half-written file in its place."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from goodfit.runtime.errors import StorageError

# What a full disk, a quota or a file-size limit (`ulimit -f`) looks like to a write.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `path`; write to it in the `with` block. On success it is
    renamed over `path`; on any error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp makes it private; a run's record is for reading
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in FULL:
            raise storage_error(path, err) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def storage_error(path: Path, err: BaseException) -> StorageError:
    return StorageError(
        f"Could not write {path}: {err}. The disk is full, or a quota or file-size limit was "
        "reached; free space or point paths.log_dir at another disk (the previous version of the "
        "file, if any, is kept)"
    )


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """JSON with two-space indents; tensors and numpy scalars as numbers, paths as strings."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
