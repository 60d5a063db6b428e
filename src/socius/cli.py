"""The ``socius`` command: serve, migrate, worker, admin, bench, version."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from socius import __version__
from socius.bootstrap import Wiring, build
from socius.domain.errors import DomainError, Unavailable
from socius.domain.users import UserStatus
from socius.preflight import PreflightError, check_dependencies, check_port, prepare_data_path
from socius.settings import Settings, SettingsError, load_settings
from socius.storage.migrate import current_revision, head_revision, upgrade

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    help="socius: a backend for social and communication apps.",
    no_args_is_help=True,
    add_completion=False,
)
admin = typer.Typer(help="Administer accounts and keys.", no_args_is_help=True)
app.add_typer(admin, name="admin")
console = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(None, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        console.print(f"[red]bad setting[/red] {exc}")
        raise typer.Exit(2) from exc


def _refuse(exc: PreflightError) -> typer.Exit:
    """Say why a command cannot start, on one line (no markup, no wrapping)."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def _ready(settings: Settings, *, database_only: bool = False) -> None:
    """The data path is sound and every configured dependency answers; else one line
    naming the setting, and exit."""
    try:
        prepare_data_path(settings)
        asyncio.run(check_dependencies(settings, database_only=database_only))
    except PreflightError as exc:
        raise _refuse(exc) from exc


def _with_wiring(settings: Settings, work: Callable[[Wiring], Awaitable[T]]) -> T:
    _ready(settings)

    async def run() -> T:
        wiring = build(settings)
        try:
            # Started, so that what the command publishes (a revocation: sockets on every
            # node close at once) reaches the running servers.
            if not await wiring.bus_start():
                raise PreflightError(
                    "the event bus did not start (SOCIUS_NATS_URL, SOCIUS_REDIS_URL)"
                )
            return await work(wiring)
        finally:
            await wiring.bus.close()
            await wiring.cache.close()
            await wiring.database.dispose()

    try:
        return asyncio.run(run())
    except PreflightError as exc:
        raise _refuse(exc) from exc
    except DomainError as exc:
        console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc


@app.command()
def version() -> None:
    """Print the socius version."""
    typer.echo(__version__)


@app.command()
def migrate() -> None:
    """Apply database migrations up to the newest schema."""
    settings = _settings()
    _ready(settings, database_only=True)
    url = settings.effective_database_url
    before = asyncio.run(current_revision(url))
    asyncio.run(upgrade(url))
    console.print(f"database at revision {head_revision()} (was {before or 'empty'})")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
) -> None:
    """Run the HTTP and WebSocket server (Granian)."""
    from granian import Granian
    from granian.constants import Interfaces

    settings = _settings(host=host, port=port, workers=workers)
    if settings.workers > 1 and not settings.redis_url:
        console.print(
            "[red]SOCIUS_WORKERS > 1 needs SOCIUS_REDIS_URL[/red]: revocations and rate "
            "limits must be shared between worker processes."
        )
        raise typer.Exit(2)
    try:
        check_port(settings.host, settings.port)
    except PreflightError as exc:
        raise _refuse(exc) from exc
    _ready(settings)
    if settings.auto_migrate:
        asyncio.run(upgrade(settings.effective_database_url))
    # Workers read their settings from the environment: pass the overrides on.
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"SOCIUS_{name}"] = str(value)
    where = "embedded SQLite" if settings.is_embedded else "PostgreSQL"
    console.print(
        f"socius {__version__} on http://{settings.host}:{settings.port} "
        f"({where}, {settings.workers} worker(s))"
    )
    Granian(
        "socius.bootstrap:create_app",
        address=settings.host,
        port=settings.port,
        workers=settings.workers,
        interface=Interfaces.ASGI,
        factory=True,
        backlog=4096,
        log_access=False,
    ).serve()


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="do one round of work and exit")] = False,
    interval: Annotated[float, typer.Option(help="seconds between rounds")] = 60.0,
) -> None:
    """Run background work: expire disappearing messages, prune the event logs past
    their retention, purge ended sessions."""
    settings = _settings()

    class Due:
        """When each periodic job runs next (monotonic seconds)."""

        purge = 0.0
        prune = 0.0

    async def one_round(wiring: Wiring, due: Due) -> None:
        expired = await wiring.container.messaging.expire_due()
        if expired:
            console.print(f"expired {expired} message(s)")
        if once or time.monotonic() >= due.prune:
            due.prune = time.monotonic() + interval
            pruned, more = await wiring.container.retention.prune()
            if pruned:
                console.print(f"pruned {pruned} event(s) past their retention")
            if more and not once:  # behind (or gave way to a lock): again next round
                due.prune = time.monotonic()
        if once or time.monotonic() >= due.purge:
            horizon = datetime.now(UTC) - timedelta(seconds=settings.access_token_ttl_seconds)
            async with wiring.database() as uow:
                purged = await uow.sessions.purge(horizon)
                await uow.commit()
            console.print(f"purged {purged} ended session(s)")
            due.purge = time.monotonic() + interval

    async def work(wiring: Wiring) -> None:
        due = Due()
        while True:
            try:
                await one_round(wiring, due)
            except Unavailable as exc:
                if once:
                    raise
                # An outage after start: wait it out, the next round tries again.
                typer.echo(f"warning: {exc.message}", err=True)
            if once:
                return
            await asyncio.sleep(1.0)

    _with_wiring(settings, work)


@admin.command("create-user")
def create_user(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    email: Annotated[str | None, typer.Option()] = None,
    is_admin: Annotated[bool, typer.Option("--admin", help="an administrator")] = False,
) -> None:
    """Create an account."""

    async def work(wiring: Wiring) -> None:
        user = await wiring.container.accounts.admin_create_user(
            username, password, email=email, is_admin=is_admin
        )
        console.print(f"created {user.username} ({user.id})")

    _with_wiring(_settings(), work)


def _set_status(username: str, status: UserStatus) -> None:
    async def work(wiring: Wiring) -> None:
        user = await wiring.container.accounts.admin_set_status(username, status)
        console.print(f"{user.username} is now {user.status.value}")

    _with_wiring(_settings(), work)


@admin.command("disable-user")
def disable_user(username: str) -> None:
    """Disable an account and end all its sessions at once."""
    _set_status(username, UserStatus.DISABLED)


@admin.command("enable-user")
def enable_user(username: str) -> None:
    """Enable a disabled account."""
    _set_status(username, UserStatus.ACTIVE)


@admin.command("list-users")
def list_users(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    after: Annotated[str | None, typer.Option(help="start after this user id")] = None,
) -> None:
    """List accounts, oldest first."""

    async def work(wiring: Wiring) -> None:
        users = await wiring.container.accounts.admin_list_users(
            limit=limit, after_id=int(after) if after else None
        )
        table = Table("id", "username", "email", "status", "admin", "created")
        for u in users:
            table.add_row(
                str(u.id),
                u.username,
                u.email or "",
                u.status.value,
                "yes" if u.is_admin else "",
                u.created_at.isoformat(timespec="seconds"),
            )
        Console().print(table)

    _with_wiring(_settings(), work)


@admin.command("rotate-keys")
def rotate_keys() -> None:
    """Make a new token signing key; older keys verify until their tokens expire."""

    async def work(wiring: Wiring) -> None:
        kid = await wiring.container.tokens.rotate()
        console.print(f"new signing key {kid}")

    _with_wiring(_settings(), work)


#: What ``socius bench`` imports beyond socius's own dependencies (the ``dev`` extras).
_BENCH_MODULES = ("matplotlib", "numpy")
_BENCH_EXTRAS = "pip install 'socius[dev]' (in a source tree: .venv/bin/pip install -e '.[dev]')"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context, workload: str) -> None:
    """Run a benchmark workload from bench/ (w1..w5, see WORKLOADS.md)."""
    root = Path.cwd()
    while not (root / "bench" / "cli.py").is_file():
        if root.parent == root:
            typer.echo("error: run socius bench from the socius source tree", err=True)
            raise typer.Exit(2)
        root = root.parent
    for name in _BENCH_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            typer.echo(f"error: socius bench needs {name}: {_BENCH_EXTRAS}", err=True)
            raise typer.Exit(2) from exc
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("bench.cli")
        code = module.run(workload, list(ctx.args))
    except ModuleNotFoundError as exc:  # one this list does not know yet
        typer.echo(f"error: socius bench needs {exc.name}: {_BENCH_EXTRAS}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def main() -> None:
    app()
