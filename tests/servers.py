"""The servers a user opens on goodfit's outputs (TensorBoard, MLflow's UI), started for a test on
a free local port and read through their own HTTP APIs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def venv_command(name: str) -> str:
    """The console script `name` of the environment running the tests."""
    return str(Path(sys.executable).parent / name)


@contextlib.contextmanager
def serving(command: list[str]) -> Iterator[None]:
    """Run a server for the duration of the block; stop it and its workers afterwards."""
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield
    finally:
        # its own process group: MLflow's UI starts worker processes of its own
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def get_bytes(url: str, timeout: float = 60.0) -> bytes:
    """GET `url`, waiting up to `timeout` seconds for the server to come up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def get_json(url: str, timeout: float = 60.0) -> Any:
    return json.loads(get_bytes(url, timeout))


def post_json(url: str, body: dict) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
