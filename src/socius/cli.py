"""The ``socius`` command: serve, migrate, worker, admin, bench, version.

Results go to stdout, diagnostics (progress, warnings, errors) to stderr, so that
``socius admin list-users --json | jq`` and ``socius migrate 2>/dev/null`` do what one
expects. What a command needs beyond settings (the app, SQLAlchemy, Litestar, Granian) is
imported inside it: ``socius version``, ``--version`` and ``--help`` answer at once.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from socius import __version__
from socius.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from socius.bootstrap import Wiring
    from socius.domain.users import User, UserStatus
    from socius.preflight import PreflightError
    from socius.services.admin import AdminService, Outcome
    from socius.services.audit import Actor

__all__ = ["app", "main"]

T = TypeVar("T")

#: ``-h`` as well as ``--help`` on every command.
_CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="socius: a backend for social and communication apps.",
    no_args_is_help=True,
    add_completion=False,
    context_settings=_CONTEXT,
)
admin = typer.Typer(
    help="Administer accounts and keys.", no_args_is_help=True, context_settings=_CONTEXT
)
app.add_typer(admin, name="admin")
events = typer.Typer(
    help="Read, relay and export the durable event stream (docs/events.md).",
    no_args_is_help=True,
    context_settings=_CONTEXT,
)
app.add_typer(events, name="events")
#: Diagnostics: progress, warnings, errors. Results are written to stdout with `_out`.
err = Console(stderr=True, highlight=False)

#: What a command runs with when neither the environment nor an option says otherwise.
_DEFAULTS = Settings()


def _out(line: str = "") -> None:
    """A result line, on stdout."""
    typer.echo(line)


def _given(ctx: typer.Context, name: str) -> bool:
    """Option ``name`` was given on the command line (rather than left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _print_version(value: bool) -> None:
    if value:
        _out(__version__)
        raise typer.Exit


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the socius version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """socius: a backend for social and communication apps."""


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(None, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        err.print(f"[red]bad setting[/red] {exc}")
        raise typer.Exit(2) from exc


def _refuse(exc: PreflightError) -> typer.Exit:
    """Say why a command cannot start, on one line (no markup, no wrapping)."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


@contextmanager
def _working(what: str) -> Iterator[Callable[[str], None]]:
    """While the block runs, a spinner saying ``what`` on a terminal's stderr (nothing
    when stderr is a file or a pipe: logs get result lines, not animation). Yields a
    function that changes the message."""
    if not err.is_terminal:
        yield lambda _text: None
        return
    with err.status(what) as status:
        yield status.update


def _ready(settings: Settings, *, database_only: bool = False) -> None:
    """The data path is sound and every configured dependency answers; else one line
    naming the setting, and exit."""
    from socius.preflight import PreflightError, check_dependencies, prepare_data_path

    try:
        prepare_data_path(settings)
        with _working("checking the database" + ("" if database_only else " and services")):
            asyncio.run(check_dependencies(settings, database_only=database_only))
    except PreflightError as exc:
        raise _refuse(exc) from exc


def _with_wiring(
    settings: Settings, work: Callable[[Wiring], Awaitable[T]], *, doing: str | None
) -> T:
    """Run ``work`` with the services wired up (and the bus started), then tear down.
    ``doing`` is what a spinner says meanwhile on a terminal (None: no spinner)."""
    from socius.bootstrap import build
    from socius.domain.errors import DomainError
    from socius.preflight import PreflightError

    _ready(settings)

    async def run() -> T:
        wiring = build(settings)
        try:
            # A node id of its own (ids it makes never collide with a server's), and the
            # bus started, so that what the command publishes (a revocation: sockets on
            # every node close at once) reaches the running servers.
            if not await wiring.start_outside_server():
                raise PreflightError(
                    "the event bus did not start (SOCIUS_NATS_URL, SOCIUS_REDIS_URL)"
                )
            return await work(wiring)
        finally:
            await wiring.container.events.stream.close()
            await wiring.bus.close()
            await wiring.cache.close()
            await wiring.database.dispose()

    try:
        if doing is None:
            return asyncio.run(run())
        with _working(doing):
            return asyncio.run(run())
    except PreflightError as exc:
        raise _refuse(exc) from exc
    except DomainError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc


@app.command()
def version() -> None:
    """Print the socius version (on stdout)."""
    _out(__version__)


@app.command()
def migrate() -> None:
    """Apply database migrations up to the newest schema.

    Each step is reported on stderr as it is applied, the resulting revision on stdout.
    """
    from socius.storage.migrate import current_revision, head_revision, pending_revisions, upgrade

    settings = _settings()
    _ready(settings, database_only=True)
    url = settings.effective_database_url
    before = asyncio.run(current_revision(url))
    steps = pending_revisions(before)
    if steps:
        err.print(
            f"applying {len(steps)} migration(s) to "
            f"{'an empty database' if before is None else f'revision {before}'}"
        )
    else:
        err.print(f"the database is up to date (revision {before})")
    started = time.monotonic()
    done = 0

    with _working(f"applying {steps[0][0]}" if steps else "checking") as say:

        def applied(revision: str, description: str) -> None:
            nonlocal done
            done += 1
            took = time.monotonic() - started
            err.print(f"  [{done}/{len(steps)}] {revision} {description} ({took:.1f} s)")
            if done < len(steps):
                say(f"applying {steps[done][0]} ({done}/{len(steps)} done)")

        asyncio.run(upgrade(url, on_applied=applied, search_language=settings.search_language))
    _out(f"database at revision {head_revision()} (was {before or 'empty'})")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="address to listen on (or SOCIUS_HOST)")
    ] = _DEFAULTS.host,
    port: Annotated[int, typer.Option(help="port to listen on (or SOCIUS_PORT)")] = _DEFAULTS.port,
    workers: Annotated[
        int,
        typer.Option(
            help="worker processes (or SOCIUS_WORKERS); 0: one per core with PostgreSQL "
            "and Redis, one on embedded SQLite"
        ),
    ] = _DEFAULTS.workers,
) -> None:
    """Run the HTTP and WebSocket server (Granian).

    Options given here win over SOCIUS_* variables (docs/configuration.md).

    Migrations are applied at start unless SOCIUS_AUTO_MIGRATE=false.
    """
    from granian import Granian
    from granian.constants import Interfaces

    from socius.preflight import PreflightError, check_port
    from socius.storage.migrate import upgrade

    # Only what the command line says overrides the environment, not the defaults shown.
    options = {"host": host, "port": port, "workers": workers}
    given = {name: value for name, value in options.items() if _given(ctx, name)}
    settings = _settings(**given)
    workers = settings.effective_workers
    if workers > 1 and not settings.redis_url:
        err.print(
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
        asyncio.run(
            upgrade(settings.effective_database_url, search_language=settings.search_language)
        )
    # Workers read their settings from the environment: pass the overrides on.
    for name, value in given.items():
        os.environ[f"SOCIUS_{name.upper()}"] = str(value)
    where = "embedded SQLite" if settings.is_embedded else "PostgreSQL"
    err.print(
        f"socius {__version__} on http://{settings.host}:{settings.port} "
        f"({where}, {workers} worker(s))"
    )
    Granian(
        "socius.bootstrap:serve_app",
        address=settings.host,
        port=settings.port,
        workers=workers,
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
    """Run background work: relay domain events to the stream, deliver webhooks, make
    notifications and pushes (docs/push.md), expire
    messages, prune event logs, purge ended sessions and expired one-time tokens (mailed
    links, logins waiting for a second factor).

    Erases disappearing messages when their time is up.

    Prunes event logs past SOCIUS_EVENT_LOG_RETENTION_SECONDS.

    Deletes the bytes of attachments whose message is gone, and uploads never sent.

    What it did is logged on stderr.
    """
    from socius.domain.errors import Unavailable

    settings = _settings()

    class Due:
        """When each periodic job runs next (monotonic seconds)."""

        purge = 0.0
        prune = 0.0

    async def one_round(wiring: Wiring, due: Due) -> None:
        published = await wiring.container.relay.run_once()
        if published:
            err.print(f"relayed {published} event(s) to the stream")
        sent = await wiring.container.webhooks.deliver_due()
        if sent:
            err.print(f"delivered {sent} webhook event(s)")
        notified = await wiring.container.notifier.run_once()
        if notified:
            err.print(f"read {notified} event(s) into notifications and pushes")
        refreshed = await wiring.container.refresher.run_once()
        if refreshed:
            err.print(f"read graph events and refreshed suggestions: {refreshed}")
        expired = await wiring.container.messaging.expire_due()
        if expired:
            err.print(f"expired {expired} message(s)")
        if once or time.monotonic() >= due.prune:
            due.prune = time.monotonic() + interval
            pruned, more = await wiring.container.retention.prune()
            if pruned:
                err.print(f"pruned {pruned} event(s) past their retention")
            if more and not once:  # behind (or gave way to a lock): again next round
                due.prune = time.monotonic()
        if once or time.monotonic() >= due.purge:
            horizon = datetime.now(UTC) - timedelta(seconds=settings.access_token_ttl_seconds)
            async with wiring.database() as uow:
                purged = await uow.sessions.purge(horizon)
                tokens = await uow.one_time_tokens.purge(datetime.now(UTC))
                tokens += await uow.challenges.purge(datetime.now(UTC))
                await uow.commit()
            err.print(f"purged {purged} ended session(s), {tokens} expired one-time token(s)")
            removed = await wiring.container.attachments.purge()
            if removed:
                err.print(f"deleted {removed} attachment(s): never sent, or their message gone")
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

    # No spinner: the worker runs for ever and logs what it does.
    _with_wiring(settings, work, doing=None)


_REASON = typer.Option(help="why: kept in the audit log with the action")


@admin.command("create-user")
def create_user(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    email: Annotated[str | None, typer.Option()] = None,
    is_admin: Annotated[bool, typer.Option("--admin", help="an administrator")] = False,
) -> None:
    """Create an account; prints its username and id. Written to the audit log."""
    from socius.services.audit import Actor

    async def work(wiring: Wiring) -> None:
        user = await wiring.container.admin.create_user(
            Actor.command_line(), username, password, email=email, is_admin=is_admin
        )
        _out(f"created {user.username} ({user.id})")

    _with_wiring(_settings(), work, doing=f"creating {username}")


def _change(
    name: str,
    change: Callable[[AdminService, Actor, int], Awaitable[Outcome]],
    done: Callable[[User], str],
    already: str,
) -> None:
    """Run one audited admin action on the account ``name`` (a username or an id) and
    print ``done(user)``; a user already so is an error (exit 1, ``no_change``)."""
    from socius.domain.errors import Conflict
    from socius.services.audit import Actor

    async def work(wiring: Wiring) -> None:
        admin = wiring.container.admin
        outcome = await change(admin, Actor.command_line(), await admin.find_user(name))
        if not outcome.changed:
            raise Conflict(f"{outcome.user.user.username} {already}", code="no_change")
        _out(done(outcome.user.user))

    _with_wiring(_settings(), work, doing=f"updating {name}")


def _set_status(name: str, status: UserStatus, reason: str | None) -> None:
    _change(
        name,
        lambda admin, actor, uid: admin.set_status(actor, uid, status, reason=reason),
        lambda user: f"{user.username} is now {user.status.value}",
        f"is already {status.value}",
    )


@admin.command("disable-user")
def disable_user(user: str, reason: Annotated[str | None, _REASON] = None) -> None:
    """Disable an account (a username or id) and end all its sessions at once."""
    from socius.domain.users import UserStatus

    _set_status(user, UserStatus.DISABLED, reason)


@admin.command("enable-user")
def enable_user(user: str, reason: Annotated[str | None, _REASON] = None) -> None:
    """Enable a disabled account (a username or id)."""
    from socius.domain.users import UserStatus

    _set_status(user, UserStatus.ACTIVE, reason)


def _set_admin(name: str, is_admin: bool, reason: str | None) -> None:
    _change(
        name,
        lambda admin, actor, uid: admin.set_admin(actor, uid, is_admin, reason=reason),
        lambda user: f"{user.username} is {'now' if is_admin else 'no longer'} an administrator",
        "is already an administrator" if is_admin else "is not an administrator",
    )


@admin.command("grant-admin")
def grant_admin(user: str, reason: Annotated[str | None, _REASON] = None) -> None:
    """Make an account (a username or id) an administrator: it may use /v1/admin."""
    _set_admin(user, True, reason)


@admin.command("revoke-admin")
def revoke_admin(user: str, reason: Annotated[str | None, _REASON] = None) -> None:
    """Take the administrator flag back; refused for the last active administrator."""
    _set_admin(user, False, reason)


#: The columns of ``list-users``: header, and the cell of one user.
_USER_COLUMNS: tuple[tuple[str, Callable[[User], str]], ...] = (
    ("id", lambda u: str(u.id)),
    ("username", lambda u: u.username),
    ("email", lambda u: u.email or ""),
    ("status", lambda u: u.status.value),
    ("admin", lambda u: "yes" if u.is_admin else ""),
    ("created", lambda u: u.created_at.isoformat(timespec="seconds")),
)


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Iterator[str]:
    """Plain text columns (no box drawing, never cut): what a pipe or a file gets."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def _users_table(users: Sequence[User]) -> None:
    """A table on a terminal wide enough for every cell; plain columns otherwise (a pipe,
    a file, a narrow terminal, which wraps lines rather than cutting cells)."""
    header = [name for name, _ in _USER_COLUMNS]
    rows = [[cell(u) for _, cell in _USER_COLUMNS] for u in users]
    out = Console()
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    boxed = sum(widths) + 3 * len(widths) + 1  # "│ " before each cell, " " after, "│"
    if not out.is_terminal or boxed > out.width:
        for line in _aligned(header, rows):
            _out(line)
        return
    from rich.table import Table

    table = Table(*header)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _users_json(users: Sequence[User], limit: int) -> None:
    import msgspec

    page = {
        "items": [
            {
                "id": str(u.id),
                "username": u.username,
                "email": u.email,
                "display_name": u.display_name,
                "status": u.status.value,
                "is_admin": u.is_admin,
                "created_at": u.created_at,
            }
            for u in users
        ],
        # Pass it as --after for the next page; null: this was the last one.
        "next_after": str(users[-1].id) if len(users) == limit else None,
    }
    _out(msgspec.json.encode(page).decode())


@admin.command("list-users")
def list_users(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many")] = 100,
    after: Annotated[str | None, typer.Option(help="start after this user id")] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='one JSON object on stdout: {"items": [...], "next_after": id or null}',
        ),
    ] = False,
) -> None:
    """List accounts, oldest first: a table on a terminal, plain columns when piped."""

    async def work(wiring: Wiring) -> list[User]:
        return await wiring.container.admin.list_oldest_first(
            limit=limit, after_id=int(after) if after else None
        )

    users = _with_wiring(_settings(), work, doing="listing accounts")
    if as_json:
        _users_json(users, limit)
    else:
        _users_table(users)


@admin.command("rotate-keys")
def rotate_keys() -> None:
    """Make a new token signing key and print its id.

    Older keys verify until their tokens expire: nobody is logged out. Written to the
    audit log.
    """
    from socius.services.audit import Actor

    async def work(wiring: Wiring) -> None:
        kid = await wiring.container.admin.rotate_keys(Actor.command_line())
        _out(f"new signing key {kid}")

    _with_wiring(_settings(), work, doing="rotating the signing keys")


@events.command("relay")
def events_relay(
    once: Annotated[
        bool, typer.Option(help="publish what is waiting (once the lease is free) and exit")
    ] = False,
) -> None:
    """Move domain events from the outbox to the stream (JetStream or the database).

    One relay is active per cluster (a lease in the database); servers run one too unless
    SOCIUS_EVENT_RELAY_IN_SERVER=false. Counts go to stderr.
    """
    settings = _settings()

    async def work(wiring: Wiring) -> None:
        relay = wiring.container.relay
        if not once:
            await relay.run()
            return
        waited = 0.0
        while (published := await relay.run_once()) is None:
            if waited > 2 * settings.event_relay_lease_seconds:
                raise _stream_busy()
            await asyncio.sleep(0.25)
            waited += 0.25
        await relay.release()
        err.print(f"published {published} event(s)")

    _with_wiring(settings, work, doing=None)


def _stream_busy() -> Exception:
    from socius.domain.errors import Conflict

    return Conflict("another relay holds the lease", code="relay_busy")


_FROM = typer.Option("--from", help="a stream position (1 is the first event) or an ISO 8601 time")
_TYPES = typer.Option(help="comma-separated event types, or prefix.* (e.g. message.*)")
_BODIES = typer.Option(help="attach message bodies that still exist")


def _print_events(
    start: str | None,
    types: str | None,
    bodies: bool,
    *,
    follow: bool,
    limit: int | None = None,
) -> None:
    """JSON lines on stdout, the shape of GET /v1/admin/events' items."""
    import msgspec

    from socius.api.rest.admin_events import event_out
    from socius.services.events import parse_start

    settings = _settings()
    encode = msgspec.json.Encoder().encode

    async def work(wiring: Wiring) -> None:
        events_ = wiring.container.events
        if start is None:
            after = await events_.stream.head() if follow else 0
        else:
            after = await events_.start_after(parse_start(start))
        shown = 0
        while True:
            page = await events_.read(
                after=after, types=[types] if types else [], limit=100, bodies=bodies
            )
            for item in page.items:
                _out(encode(event_out(item, bodies=bodies)).decode())
                shown += 1
                if limit is not None and shown >= limit:
                    return
            after = page.next_after
            if not page.items:
                if not follow:
                    return
                await asyncio.sleep(0.5)

    _with_wiring(settings, work, doing=None)


@events.command("replay")
def events_replay(
    start: Annotated[str | None, _FROM] = None,
    types: Annotated[str | None, _TYPES] = None,
    bodies: Annotated[bool, _BODIES] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many")] = None,
) -> None:
    """Print the stream from a position or time (default: the start) up to its end, one
    JSON object a line."""
    _print_events(start, types, bodies, follow=False, limit=limit)


@events.command("tail")
def events_tail(
    start: Annotated[str | None, _FROM] = None,
    types: Annotated[str | None, _TYPES] = None,
    bodies: Annotated[bool, _BODIES] = False,
) -> None:
    """Print new events as they arrive (from a position or time when given), one JSON
    object a line, until interrupted."""
    _print_events(start, types, bodies, follow=True)


def _when(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time (or date) from the command line, in UTC when no zone is given."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=name) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@events.command("export")
def events_export(
    out: Annotated[Path, typer.Option(help="the directory to write (Parquet files)")],
    since: Annotated[str | None, typer.Option(help="from this time (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="up to (not including) this time")] = None,
    types: Annotated[str | None, _TYPES] = None,
    restart: Annotated[
        bool, typer.Option(help="start over instead of resuming the export in OUT")
    ] = False,
) -> None:
    """Write the stream to Parquet, partitioned by day and event type (docs/analytics.md).

    Resumable: run it again with the same options to continue where it stopped. Events
    about erased accounts and redacted messages are left out. Needs socius[analytics].
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from socius.domain.stream import check_types
    from socius.stream.export import ExportError, MissingExtra, export_events, export_schema

    start, end = _when(since, "--since"), _when(until, "--until")
    try:
        export_schema()
    except MissingExtra as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings = _settings()

    async def work(wiring: Wiring) -> None:
        wanted = check_types([types] if types else [])
        progress = Progress(
            "exporting",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
        )
        with progress:
            task = progress.add_task("events", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            try:
                result = await export_events(
                    wiring.container.events.stream,
                    out,
                    since=start,
                    until=end,
                    types=wanted,
                    restart=restart,
                    on_progress=advance,
                )
            except ExportError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from exc
        _out(
            f"exported {result.written} event(s) in {result.files} file(s) to {out} "
            f"(left out {result.skipped} erased; up to position {result.last_position}"
            f"{', resumed' if result.resumed else ''})"
        )

    _with_wiring(settings, work, doing=None)


#: What ``socius bench`` imports beyond socius's own dependencies (the ``dev`` extras).
_BENCH_MODULES = ("matplotlib", "numpy")
_BENCH_EXTRAS = "pip install 'socius[dev]' (in a source tree: .venv/bin/pip install -e '.[dev]')"


@app.command(
    context_settings={**_CONTEXT, "allow_extra_args": True, "ignore_unknown_options": True}
)
def bench(ctx: typer.Context, workload: str) -> None:
    """Run a benchmark workload from bench/ (w1..w5, see docs/workloads.md)."""
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
