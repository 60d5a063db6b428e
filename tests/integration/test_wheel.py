"""The wheel carries what the server serves besides code: the browser client, the
vendored API reference with its licence, and the migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "socius" / "web"


@pytest.mark.slow
def test_the_wheel_packages_the_web_files(tmp_path: Path) -> None:
    # Built with the installed hatchling (a dev dependency): no index is asked.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("socius-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "socius/web/" + p.relative_to(WEB).as_posix() for p in WEB.rglob("*") if p.is_file()
    }
    assert {"socius/web/index.html", "socius/web/docs/swagger-ui/LICENSE"} <= expected
    assert expected <= names, sorted(expected - names)
    assert any(n.startswith("socius/_migrations/versions/") for n in names)
