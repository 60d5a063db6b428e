"""scripts/_venv.sh says what it is doing while the first install runs (about a minute of
pip), instead of a minute of silence; and a failed install shows pip's own words.

The interpreter in the test's .venv is a stand-in: it plays pip (lines in the log, like
pip's) and waits until the script has reported it, so nothing here depends on timing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
# A stand-in interpreter: `-c` checks pass; `-m pip install` prints pip-like lines and
# waits (up to 60 s) until the progress report on the script's stdout names the download.
if [[ "$1" == "-c" ]]; then exit 0; fi
if [[ "$1 $2 $3" == "-m pip install" ]]; then
    echo "Obtaining file:///somewhere"
    echo "Collecting fakepackage>=1.0"
    echo "  Downloading fakepackage-1.0-py3-none-any.whl (12 kB)"
    for _ in $(seq 600); do
        grep -q "Downloading fakepackage" "$PROGRESS_OUT" && exit "$PIP_EXIT"
        sleep 0.1
    done
    echo "the progress line never came" >&2
    exit 3
fi
exit 1
"""


def ensure_venv(root: Path, pip_exit: int) -> tuple[subprocess.CompletedProcess[str], str]:
    (root / "pyproject.toml").write_text('[project]\nname = "fake"\n')
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    out = root / "stdout.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIUS_")} | {
        "SOCIUS_ROOT": str(root),
        "INSTALL_PROGRESS_SECONDS": "0.2",
        "PROGRESS_OUT": str(out),
        "PIP_EXIT": str(pip_exit),
    }
    script = f'source "{ROOT}/scripts/_venv.sh" && socius_ensure_venv dev'
    with out.open("w") as stdout:
        result = subprocess.run(
            ["bash", "-c", script], env=env, stdout=stdout, stderr=subprocess.PIPE,
            text=True, timeout=120, check=False,
        )  # fmt: skip
    return result, out.read_text()


def test_the_first_install_says_what_it_is_doing(tmp_path):
    result, stdout = ensure_venv(tmp_path, pip_exit=0)
    assert result.returncode == 0, (stdout, result.stderr)
    lines = stdout.splitlines()
    assert lines[0].startswith("==> installing socius with [dev] into .venv"), stdout
    assert "about a minute" in lines[1]
    assert str(tmp_path / ".venv" / ".socius-install.log") in lines[1]
    progress = [line for line in lines if line.strip().startswith("...")]
    assert progress, stdout
    assert "Downloading fakepackage-1.0" in progress[-1]
    assert lines[-1].strip().startswith("installed in "), stdout
    assert (tmp_path / ".venv" / ".socius-installed").read_text().split() == [
        subprocess.run(["sha256sum", str(tmp_path / "pyproject.toml")], capture_output=True,
                       text=True, check=True).stdout.split()[0],
        "dev",
    ]  # fmt: skip

    # Installed: the next run says nothing at all.
    again = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/_venv.sh" && socius_ensure_venv dev'],
        env={"SOCIUS_ROOT": str(tmp_path), "PATH": os.environ["PATH"]},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_a_failed_install_shows_the_log(tmp_path):
    result, stdout = ensure_venv(tmp_path, pip_exit=1)
    assert result.returncode == 1
    assert "Collecting fakepackage" in result.stderr  # the tail of pip's log
    assert "error: pip install -e '.[dev]' failed" in result.stderr
    assert not (tmp_path / ".venv" / ".socius-installed").exists()
    assert "installed in" not in stdout
