"""A readable text summary of a py-spy raw (folded) profile of a server worker: samples
by thread, the event-loop thread's own time by package, inclusive time by socius module
and by the main entry points (HTTP route handlers, the WebSocket gateway, the bus), the
top inclusive and leaf frames, plus the CPU each thread used (from /proc)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

__all__ = ["thread_cpu", "thread_cpu_delta", "write_summary"]

_LIBS = (
    "socius/",
    "litestar/",
    "msgspec/",
    "sqlalchemy/",
    "redis/",
    "nats/",
    "asyncpg/",
    "aiosqlite/",
    "structlog/",
    "prometheus_client/",
    "jwt/",
    "granian/",
    "asyncio/",
    "sqlite3/",
)

# The outermost socius frame that says what the loop was doing.
_ENTRY = (
    ("socius/api/rest/", "HTTP route: "),
    ("socius/realtime/gateway.py", "WebSocket connection: "),
    ("socius/realtime/hub.py", "hub: "),
    ("socius/bus/", "bus: "),
    ("socius/observability/", "middleware: "),
    ("socius/bootstrap.py", "housekeeping: "),
    ("socius/realtime/", "presence: "),
)


def _where(frame: str) -> tuple[str, str]:
    """'func (pkg/mod.py:12)' -> ('func', 'pkg/mod.py')."""
    if " (" not in frame:
        return frame, ""
    name, _, rest = frame.rpartition(" (")
    return name, rest.rstrip(")").partition(":")[0]


def _package(frame: str) -> str:
    _, path = _where(frame)
    if not path:
        return "native / idle"
    parts = path.split("/")
    if parts[0] == "socius" and len(parts) > 2:
        return f"socius.{parts[1]}"
    return parts[0].removesuffix(".py") if len(parts) > 1 else f"stdlib {parts[0]}"


def _short(frame: str) -> str:
    name, path = _where(frame)
    return f"{name} ({path})" if path else name


def _module(frame: str) -> str | None:
    _, path = _where(frame)
    return path.removesuffix(".py").replace("/", ".") if path.startswith("socius/") else None


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """CPU seconds used so far by each thread of `pid`: tid -> (name, seconds)."""
    hz = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / hz)
    return out


def thread_cpu_delta(
    before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]], seconds: float
) -> list[tuple[float, str]]:
    rows = []
    for tid, (name, cpu) in after.items():
        used = (cpu - before.get(tid, (name, 0.0))[1]) / max(seconds, 1e-9)
        rows.append((used, f"{tid} {name}"))
    return sorted(rows, reverse=True)


def write_summary(
    folded: Path,
    out: Path,
    header: str,
    *,
    threads_cpu: list[tuple[float, str]] | None = None,
    top: int = 40,
) -> None:
    threads: Counter[str] = Counter()
    main_total = other_total = 0
    own_pkg: Counter[str] = Counter()
    own_fn: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    entries: Counter[str] = Counter()
    other_own: Counter[str] = Counter()
    lines = folded.read_text().splitlines() if folded.exists() else []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        threads[frames[0]] += n
        body = frames[1:]
        leaf = body[-1] if body else "native / idle"
        if "MainThread" not in frames[0]:
            other_total += n
            other_own[f"{_package(leaf)}: {_short(leaf)}"] += n
            continue
        main_total += n
        own_pkg[_package(leaf)] += n
        own_fn[_short(leaf)] += n
        for name in {_short(f) for f in body if any(_where(f)[1].startswith(p) for p in _LIBS)}:
            inclusive[name] += n
        for mod in {m for f in body if (m := _module(f))}:
            modules[mod] += n
        entry = "(no socius frame: Granian / Litestar / asyncio / idle)"
        for f in body:
            _, path = _where(f)
            hit = next((label for prefix, label in _ENTRY if path.startswith(prefix)), None)
            if hit:
                entry = hit + _short(f)
                break
        entries[entry] += n

    def pct(c: int, total: int) -> str:
        return f"{100 * c / total:5.1f}%" if total else "  -  "

    w: list[str] = [header.rstrip(), ""]
    if threads_cpu is not None:
        w.append("== CPU per thread of the worker while sampled (/proc, cores) ==")
        busy = [(c, t) for c, t in threads_cpu if c >= 0.005]
        for c, t in busy[:12]:
            w.append(f"  {c:5.2f}  {t}")
        w.append(f"  {sum(c for c, _ in threads_cpu):5.2f}  total")
        w.append("")
    total = sum(threads.values())
    w += [
        f"py-spy samples: {total} (main thread {main_total}, other threads {other_total}).",
        "py-spy --nonblocking cannot always tell a thread waiting in C (Granian's Rust I/O",
        "loop, aiosqlite's threads waiting on their queue) from one running: the /proc CPU",
        "per thread above says where the CPU went; the main-thread shares below say what",
        "the event-loop thread spends its samples on.",
        "",
        "== samples by thread ==",
    ]
    w += [f"  {pct(c, total)}  {t}" for t, c in threads.most_common()]
    w += ["", "== main thread: what the loop was running (outermost socius frame) =="]
    w += [f"  {pct(c, main_total)}  {k}" for k, c in entries.most_common(25)]
    w += ["", "== main thread: own time by package =="]
    w += [f"  {pct(c, main_total)}  {k}" for k, c in own_pkg.most_common(25)]
    w += ["", "== main thread: inclusive time by socius module =="]
    w += [f"  {pct(c, main_total)}  {k}" for k, c in modules.most_common(30)]
    w += ["", f"== main thread: top {top} inclusive frames (socius and libraries) =="]
    w += [f"  {pct(c, main_total)}  {k}" for k, c in inclusive.most_common(top)]
    w += ["", f"== main thread: top {top} own-time (leaf) frames =="]
    w += [f"  {pct(c, main_total)}  {k}" for k, c in own_fn.most_common(top)]
    if other_total:
        w += ["", "== other threads: own time =="]
        w += [f"  {pct(c, other_total)}  {k}" for k, c in other_own.most_common(20)]
    out.write_text("\n".join(w) + "\n")
