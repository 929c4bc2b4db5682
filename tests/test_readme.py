"""The README is a newcomer's path: every command it shows must exist and run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ier.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(prefix: str) -> list[str]:
    lines = []
    for block in _bash_blocks(README.read_text()):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(prefix):
                lines.append(line)
    return lines


def test_readme_shows_the_quickstart_commands() -> None:
    blocks = "\n".join(_bash_blocks(README.read_text()))
    for needed in ("bash scripts/setup.sh", "bash scripts/demo.sh", "bash .ci/run"):
        assert needed in blocks
    for script in ("scripts/setup.sh", "scripts/demo.sh", ".ci/run"):
        assert (ROOT / script).exists(), script
    # .ci/run runs the README's test command.
    assert "python3 -m pytest -q" in (ROOT / ".ci/run").read_text()
    assert "`python -m pytest -q`" in README.read_text()


def _inline_commands() -> list[str]:
    found = re.findall(r"`(ier [^`]+)`", README.read_text())
    # Full commands only (a bare `ier localize` in prose names the command).
    return [c for c in found if "..." not in c and len(shlex.split(c)) > 2]


@pytest.mark.parametrize("command", _commands("ier ") + _inline_commands())
def test_every_readme_ier_command_parses(command: str) -> None:
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.handler)


def test_readme_has_ier_commands() -> None:
    names = {shlex.split(c)[1] for c in _commands("ier ")}
    assert {"scenes", "train", "evaluate", "localize", "bench"} <= names


@pytest.mark.slow
def test_readme_step_by_step_runs_as_written(tmp_path: Path) -> None:
    """Runs the README's step-by-step block literally (relative paths, in a fresh folder)."""
    for command in _commands("ier "):
        run = subprocess.run(
            [sys.executable, "-m", "ier", *shlex.split(command)[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, f"{command}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    assert (tmp_path / "runs/ier-tiny/model.safetensors").exists()
    assert (tmp_path / "out/wild0/localization.json").exists()
    assert (tmp_path / "runs/bench-tiny/results.md").exists()
