"""Debian's Chromium driven by Playwright for Python, for the browser tests.

Playwright never downloads a browser here: it launches the system's Chromium
(``/usr/bin/chromium``, installed by ``scripts/browser-deps``; ``SOCIUS_TEST_CHROMIUM``
names another). Without it the browser tests are skipped, except under CI (``CI=true``),
where a missing browser fails them. Screenshots go to ``test-artifacts/browser/`` at the
repository's root (ignored by git), one folder per test; the run's summary says where.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

__all__ = ["ARTIFACTS", "CHROMIUM_ARGS", "Shots", "chromium_path"]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"

# As root Chromium needs --no-sandbox (Playwright adds it); the rest keep it from calling
# out to Google's services, which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


def chromium_path() -> str:
    """The Chromium to launch; skips (fails under CI) when it or Playwright is missing."""
    path = os.environ.get("SOCIUS_TEST_CHROMIUM") or shutil.which("chromium") or ""
    if not path and Path("/usr/bin/chromium").exists():
        path = "/usr/bin/chromium"
    problem = ""
    if not path:
        problem = "Chromium is not installed (scripts/browser-deps installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {problem}", pytrace=False)
        pytest.skip(problem)
    return path


class Shots:
    """Numbered screenshots of one test, in ``test-artifacts/browser/<test>/``."""

    taken: list[Path] = []  # every file written in this run, for the summary

    def __init__(self, test_name: str) -> None:
        self.folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def path(self, name: str) -> Path:
        self.count += 1
        shot = self.folder / f"{self.count:02d}-{name}.png"
        Shots.taken.append(shot)
        return shot
