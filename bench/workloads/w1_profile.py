"""Sum up a py-spy raw (folded) profile of a server worker into a readable text file:
where the time goes, by thread, by package, by route handler, and the top inclusive
frames in socius / litestar / msgspec / sqlalchemy / redis / driver code."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

__all__ = ["write_profile_summary"]

_LIBS = (
    "socius/",
    "litestar/",
    "msgspec/",
    "sqlalchemy/",
    "redis/",
    "asyncpg/",
    "aiosqlite/",
    "structlog/",
    "prometheus_client/",
    "jwt/",
    "granian/",
    "asyncio/",
    "sqlite3/",
)


def _where(frame: str) -> tuple[str, str, str]:
    """'func (pkg/mod.py:12)' -> ('func', 'pkg/mod.py', '12')."""
    if " (" not in frame:
        return frame, "", ""
    name, _, rest = frame.rpartition(" (")
    path, _, line = rest.rstrip(")").partition(":")
    return name, path, line


def _package(frame: str) -> str:
    _, path, _ = _where(frame)
    if not path:
        return "native / idle"
    parts = path.split("/")
    if parts[0] == "socius" and len(parts) > 2:
        return f"socius.{parts[1]}" + (
            f".{parts[2].removesuffix('.py')}" if parts[1] == "api" and len(parts) > 3 else ""
        )
    return parts[0].removesuffix(".py") if len(parts) > 1 else f"stdlib {parts[0]}"


def _short(frame: str) -> str:
    name, path, _ = _where(frame)
    return f"{name} ({path})" if path else name


def write_profile_summary(
    folded: Path,
    out: Path,
    header: str,
    top: int = 40,
    threads_cpu: list[tuple[float, str]] | None = None,
    per_op: list[str] | None = None,
) -> None:
    lines = folded.read_text().splitlines() if folded.exists() else []
    threads: Counter[str] = Counter()
    main_total = 0
    other_total = 0
    inclusive: Counter[str] = Counter()
    own_pkg: Counter[str] = Counter()
    own_fn: Counter[str] = Counter()
    handlers: Counter[str] = Counter()
    other_own: Counter[str] = Counter()
    other_incl: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0]
        threads[thread] += n
        body = frames[1:]
        leaf = body[-1] if body else "native / idle"
        if "MainThread" in thread:
            main_total += n
            own_pkg[_package(leaf)] += n
            own_fn[_short(leaf)] += n
            seen = {_short(f) for f in body if any(_where(f)[1].startswith(p) for p in _LIBS)}
            for name in seen:
                inclusive[name] += n
            handler = next(
                (_short(f) for f in body if _where(f)[1].startswith("socius/api/rest/")), None
            )
            handlers[handler or "(outside a route handler: server, middleware, event loop)"] += n
        else:
            other_total += n
            other_own[f"{_package(leaf)}: {_short(leaf)}"] += n
            for name in {_short(f) for f in body}:
                other_incl[name] += n

    def pct(c: int, total: int) -> str:
        return f"{100 * c / total:5.1f}%" if total else "  -  "

    w: list[str] = [header.rstrip(), ""]
    if per_op:
        w += per_op
        w.append("")
    if threads_cpu is not None:
        w.append("== CPU per thread of the worker during the sampling (/proc, cores) ==")
        busy = [(c, t) for c, t in threads_cpu if c >= 0.005]
        for c, t in busy[:12]:
            w.append(f"  {c:5.2f}  {t}")
        rest = sum(c for c, _ in busy[12:])
        if rest:
            w.append(f"  {rest:5.2f}  ({len(busy) - 12} more threads)")
        w.append(f"  {sum(c for c, _ in threads_cpu):5.2f}  total")
        w.append("")
    total = sum(threads.values())
    w.append(f"py-spy samples: {total} (main thread {main_total}, other threads {other_total}).")
    w.append("NB: py-spy --nonblocking cannot always tell a thread blocked in C (aiosqlite's")
    w.append("threads waiting on their queue, Granian's Rust loop waiting for I/O) from one")
    w.append("running: trust the /proc CPU per thread above for where the CPU went, and the")
    w.append("main-thread percentages below for what the event loop thread spends it on.")
    w.append("'granian/server/mp.py _spawn_asgi_lifespan_worker' as a leaf = inside Granian's")
    w.append("native (Rust) code: HTTP I/O, driving the coroutines, and waiting for I/O.")
    w.append("")
    w.append("== samples by thread ==")
    for t, c in threads.most_common():
        w.append(f"  {pct(c, total)}  {t}")
    w.append("")
    w.append("== main thread (event loop): own time by package ==")
    for k, c in own_pkg.most_common(25):
        w.append(f"  {pct(c, main_total)}  {k}")
    w.append("")
    w.append("== main thread: inclusive time by route handler (socius/api/rest) ==")
    for k, c in handlers.most_common(25):
        w.append(f"  {pct(c, main_total)}  {k}")
    w.append("")
    w.append(
        f"== main thread: top {top} inclusive frames in "
        "socius/litestar/msgspec/sqlalchemy/redis/drivers/asyncio =="
    )
    for k, c in inclusive.most_common(top):
        w.append(f"  {pct(c, main_total)}  {k}")
    w.append("")
    w.append(f"== main thread: top {top} own-time (leaf) frames ==")
    for k, c in own_fn.most_common(top):
        w.append(f"  {pct(c, main_total)}  {k}")
    if other_total:
        w.append("")
        w.append("== other threads (aiosqlite's per-connection threads, Redis, ...): own time ==")
        for k, c in other_own.most_common(20):
            w.append(f"  {pct(c, other_total)}  {k}")
        w.append("")
        w.append("== other threads: inclusive ==")
        for k, c in other_incl.most_common(20):
            w.append(f"  {pct(c, other_total)}  {k}")
    out.write_text("\n".join(w) + "\n")
