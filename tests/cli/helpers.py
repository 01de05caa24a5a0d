"""Run the ``agentstream`` command as a user would: a subprocess, timed, its output captured."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HIDE = Path(__file__).resolve().parent / "hide"

#: Every user error must be reported within this many seconds.
FAST_S = 10.0


@dataclass(frozen=True)
class Outcome:
    """What one command did."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    def error_lines(self) -> list[str]:
        """The non-empty lines on stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def agentstream(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    hide: tuple[str, ...] = (),
    timeout_s: float = 60.0,
) -> Outcome:
    """Run ``python -m agentstream ARGS`` in ``cwd``; ``hide`` makes modules unimportable."""
    unset = ("AGENTSTREAM_BROKER", "AGENTSTREAM_STORE")
    full = {k: v for k, v in os.environ.items() if k not in unset}
    full.update(env or {})
    paths = [str(ROOT / "src"), str(ROOT), full.get("PYTHONPATH", "")]
    if hide:
        paths.insert(0, str(HIDE))
        full["AGENTSTREAM_TEST_HIDE"] = ",".join(hide)
    full["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    full["COLUMNS"] = "80"
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "agentstream", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return Outcome(out.returncode, out.stdout, out.stderr, time.monotonic() - started)


def write_app(folder: Path, module: str, body: str) -> str:
    """Write an app module into ``folder`` and return its ``MODULE:app`` target."""
    (folder / f"{module}.py").write_text(textwrap.dedent(body))
    return f"{module}:app"


def assert_one_clear_error(out: Outcome, *fragments: str, code: int = 1) -> None:
    """A user error: the exit code, one or two lines naming each fragment, fast, no traceback."""
    assert out.code == code, (out.code, out.stderr[-3000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = out.error_lines()
    assert 1 <= len(lines) <= 2, out.stderr[-3000:]
    for fragment in fragments:
        assert fragment in out.stderr, (fragment, out.stderr)
    assert out.seconds < FAST_S, out.seconds


class Running:
    """A long-running ``agentstream`` process whose stderr lines are collected as they come."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSTREAM_")}
        full.update(env or {})
        full["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentstream", *args],
            cwd=cwd,
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float = 60.0) -> None:
        """Wait until ``predicate(lines)`` holds (fails with the output when it never does)."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.lines):
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited {self.proc.returncode}:\n" + "\n".join(self.lines))
            if time.monotonic() > deadline:
                raise AssertionError("timed out:\n" + "\n".join(self.lines[-50:]))
            time.sleep(0.05)

    def stop(self, sig: int, timeout_s: float = 60.0) -> tuple[int, float]:
        """Send ``sig``; return the exit code and the seconds until the process ended."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """Kill it if it is still running and close its pipe (test clean-up)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
