"""The core install runs without the `otel` extra while tracing is off, and says which
extra to install when tracing is on without it. Each case runs in a fresh interpreter
where the SDK and the exporter cannot be imported, as after `pip install socius`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Makes `import opentelemetry.sdk` / `opentelemetry.exporter` fail, as when not installed.
BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoExtra(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoExtra())
    """
)


def run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )


def test_tracing_off_serves_without_the_sdk(tmp_path: Path) -> None:
    done = run(
        f"""
        import asyncio, sys
        from litestar.testing import TestClient
        from socius.bootstrap import create_app
        from socius.settings import load_settings
        from socius.storage.migrate import upgrade

        settings = load_settings({{}}, data_dir={str(tmp_path)!r}, log_json=False)
        asyncio.run(upgrade(settings.effective_database_url))
        with TestClient(create_app(settings)) as http:
            assert http.get("/readyz").status_code == 200
            body = {{"username": "nosdk", "password": "correct horse battery staple"}}
            assert http.post("/v1/auth/register", json=body).status_code == 201
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
        print("sdk modules:", loaded)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sdk modules: []" in done.stdout


def test_tracing_on_without_the_extra_is_refused_with_its_name(tmp_path: Path) -> None:
    done = run(
        f"""
        import asyncio
        from socius.preflight import PreflightError, check_dependencies
        from socius.settings import load_settings

        settings = load_settings(
            {{}}, data_dir={str(tmp_path)!r}, otlp_endpoint="http://127.0.0.1:4318"
        )
        try:
            asyncio.run(check_dependencies(settings))
        except PreflightError as exc:
            print("refused:", exc, exc.exit_code)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: SOCIUS_OTLP_ENDPOINT is set" in done.stdout
    assert "pip install 'socius[otel]'" in done.stdout
    assert done.stdout.rstrip().endswith(" 2")
