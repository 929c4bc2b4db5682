"""The CLI itself: a fast start (no heavy imports for --help/--version), lists that mirror the
library's, and console lines that never share a progress bar's line."""

from __future__ import annotations

import ast
import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ier.cli import build_parser, main
from ier.progress import LineStream

ROOT = Path(__file__).resolve().parents[1]
MARK = "# lazy: keeps ier --help fast"
HEAVY = ("torch", "numpy", "scipy", "av", "PIL", "safetensors", "sklearn")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_nothing_heavy(flag: str) -> None:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['ier', {flag!r}]\n"
        "try:\n    runpy.run_module('ier', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    tick = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - tick
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout[-300:]
    assert seconds < 5  # loose: the machine may be busy; the mechanism is the import list


def test_every_subcommand_help_builds_without_heavy_imports() -> None:
    code = (
        "import sys\nfrom ier.cli import build_parser\nbuild_parser()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_cli_lists_mirror_the_library() -> None:
    from ier.adapters import list_datasets
    from ier.bench.plan import BENCH_PLANS
    from ier.commands import bench, evaluate, prepare, train
    from ier.config import PRESETS
    from ier.data.sample import SPLIT_KINDS

    assert train.PRESETS == PRESETS
    assert bench.BENCH_PRESETS == tuple(BENCH_PLANS)
    assert list(prepare.DATASETS) == list_datasets()
    assert evaluate.SPLIT_KINDS == SPLIT_KINDS


def test_handler_imports_say_why_they_are_lazy() -> None:
    """Every import inside a command's function carries the comment that explains it."""
    for path in sorted((ROOT / "src/ier/commands").glob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            imports = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
            import_lines = {i for n in imports for i in range(n.lineno, n.end_lineno + 1)}
            for inner in imports:
                line = inner.lineno  # 1-based; walk up over a group of imports to its comment
                commented = MARK in lines[line - 1]
                while not commented and line - 1 in import_lines:
                    line -= 1
                    commented = MARK in lines[line - 1]
                commented = commented or MARK in lines[line - 2]
                assert commented, f"{path.name}:{inner.lineno}: {lines[inner.lineno - 1].strip()}"


def test_version_is_printed() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0


# --------------------------------------------------------------------------- console lines


def test_progress_redraws_never_share_a_line_with_other_output() -> None:
    from tqdm import tqdm

    raw = io.StringIO()
    stream = LineStream(raw, interval=0.0)
    bar = tqdm(total=4, file=stream, leave=False, mininterval=0, desc="work")
    bar.update(2)
    stream.write("INFO something happened\n")
    bar.update(2)
    bar.close()
    stream.write("ier x: error: it failed\n")
    kept = tqdm(total=2, file=stream, leave=True, mininterval=0, desc="kept")
    kept.update(2)
    kept.close()
    lines = raw.getvalue().splitlines()
    assert "\r" not in raw.getvalue() and raw.getvalue().endswith("\n")
    assert "INFO something happened" in lines and "ier x: error: it failed" in lines
    for line in lines:  # a bar line holds only the bar; other lines hold no bar
        assert ("|" in line) != line.startswith(("INFO", "ier x")), line
    assert any(line.startswith("work: 100%") for line in lines)
    assert any(line.startswith("kept: 100%") for line in lines)


def test_a_slow_bar_is_written_at_most_every_interval() -> None:
    raw = io.StringIO()
    stream = LineStream(raw, interval=3600)
    for i in range(50):
        stream.write(f"\rstep {i}/50")
    assert raw.getvalue() == ""  # held back
    stream.write("\r" + " " * 10 + "\r")  # the bar clears itself: its last state is kept
    assert raw.getvalue() == "step 49/50\n"


def test_cli_errors_and_logs_start_on_their_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a",\n')
    logging.getLogger("ier.test").info("before")
    assert main(["evaluate", "--predictions", str(tmp_path / "p.npz"), "--manifest", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ier evaluate: error:") and err.endswith("\n")
    assert json.dumps is not None
