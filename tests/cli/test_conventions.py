"""Command-line conventions: plain flags in help, --json a flag everywhere, shell completion."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.helpers import agentstream

COMMANDS = [
    ("run",), ("produce",), ("status",), ("tail",), ("replay",), ("prune",), ("simulate-llm",),
    ("demo",), ("dlq", "list"), ("dlq", "show"), ("dlq", "redrive"), ("journal", "list"),
    ("journal", "show"), ("journal", "import"), ("journal", "export"),
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_no_type_after_flags_and_json_is_a_flag(command, tmp_path):
    out = agentstream(*command, "--help", cwd=tmp_path)
    assert out.code == 0, out.stderr
    assert "<bool>" not in out.stdout
    for line in out.stdout.splitlines():
        if re.match(r"\s+--json(\s|$)", line):
            assert re.match(r"\s+--json\s{2,}\S", line), line  # no metavar: a flag


def test_status_and_tail_and_replay_take_json():
    for command in (("status",), ("tail",), ("replay",), ("dlq", "list"), ("journal", "list")):
        out = agentstream(*command, "--help", cwd=Path.cwd())
        assert re.search(r"^\s+--json\s{2,}", out.stdout, re.M), (command, out.stdout)


def test_shell_completion_is_offered(tmp_path):
    out = agentstream("--show-completion", "bash", cwd=tmp_path)
    assert out.code == 0 and "complete" in out.stdout, out.stdout + out.stderr
