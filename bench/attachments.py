"""Attachments: upload and download throughput (MiB/s) and server CPU per MiB.

    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.attachments
    flock /tmp/socius-cpu.lock .venv/bin/python -m bench.attachments --stack postgres

One `socius serve` (the harness's server, stack and CPU meter). The embedded stack keeps
the bytes in files under its data dir; the postgres stack in the local SeaweedFS S3
gateway (``--s3-url``, as scripts/services starts it), under a prefix of the run's own.
``--files`` files of ``--size-mib`` MiB each (random bytes behind a PDF header, so that
they are sniffed as PDFs) are uploaded through ``POST /v1/uploads``, ``--concurrency`` at
a time, then downloaded whole through ``GET /v1/attachments/{id}`` (every byte checked
against its SHA-256). Per phase: MiB/s over the wall clock, and the socius process's CPU
seconds per MiB. The floor is the store itself, the same bytes at the same concurrency
without socius: each file written to a spool file and put into the store, then read back
(for S3: PUT and GET straight to the gateway, signed the same way; for files: a write, a
rename, a read). ``--runs`` runs, medians reported.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from bench.harness.cpu import CpuMeter
from bench.harness.machine import machine_info
from bench.harness.server import ServerProcess, free_port
from bench.harness.stack import fresh_stack
from socius.blobs import FileBlobStore, S3BlobStore
from socius.services.ports import BlobStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "correct horse battery staple"  # noqa: S105 (a test account's)
MIB = 1024 * 1024


def _s3_env(url: str, prefix: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {
        "SOCIUS_BLOB_URL": f"s3:/{parts.path}/{prefix}",
        "SOCIUS_BLOB_S3_ENDPOINT": f"{parts.scheme}://{parts.hostname}:{parts.port}",
        "SOCIUS_BLOB_S3_ACCESS_KEY": unquote(parts.username or ""),
        "SOCIUS_BLOB_S3_SECRET_KEY": unquote(parts.password or ""),
    }


def _floor_store(env: dict[str, str], data_dir: Path) -> BlobStore:
    if "SOCIUS_BLOB_URL" not in env:
        return FileBlobStore(data_dir / "floor")
    return S3BlobStore(
        bucket=env["SOCIUS_BLOB_URL"].split("/")[2],
        prefix="floor-" + env["SOCIUS_BLOB_URL"].split("/", 3)[3],
        endpoint=env["SOCIUS_BLOB_S3_ENDPOINT"],
        region="us-east-1",
        access_key=env["SOCIUS_BLOB_S3_ACCESS_KEY"],
        secret_key=env["SOCIUS_BLOB_S3_SECRET_KEY"],
    )


async def _gather(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


def _phase(meter: CpuMeter, mib: float) -> dict[str, float]:
    elapsed = meter.result["elapsed_s"]
    return {
        "mib_per_s": round(mib / elapsed, 1),
        "server_cpu_ms_per_mib": round(meter.result["server_cpu_s"] / mib * 1000, 2),
        "elapsed_s": elapsed,
        "machine_busy_cores": meter.result["machine_busy_cores"],
    }


async def _one_run(
    base: str, token: str, server: ServerProcess, files: list[bytes], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    mib = sum(map(len, files)) / MIB
    headers = {"Authorization": f"Bearer {token}"}
    ids: list[str] = [""] * len(files)
    errors = 0
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=headers) as http:

        def upload(k: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                nonlocal errors
                r = await http.post("/v1/uploads", content=files[k])
                if r.status_code != 201:
                    errors += 1
                    return
                ids[k] = r.json()["id"]

            return job

        def download(k: int) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                nonlocal errors
                digest = hashlib.sha256()
                async with http.stream("GET", f"/v1/attachments/{ids[k]}") as r:
                    async for chunk in r.aiter_bytes(1 << 20):
                        digest.update(chunk)
                if r.status_code != 200 or digest.digest() != hashlib.sha256(files[k]).digest():
                    errors += 1

            return job

        with CpuMeter(server.worker_pids()) as up:
            await _gather(args.concurrency, [upload(k) for k in range(len(files))])
        with CpuMeter(server.worker_pids()) as down:
            await _gather(args.concurrency, [download(k) for k in range(len(files))])
    return {
        "upload": _phase(up, mib),
        "download": _phase(down, mib),
        "errors": {"count": float(errors)},
    }


async def _floor_run(
    store: BlobStore, files: list[bytes], spool: Path, args: argparse.Namespace
) -> dict[str, float]:
    """The store alone: the same files put and read back at the same concurrency."""
    mib = sum(map(len, files)) / MIB
    digests = [hashlib.sha256(d).hexdigest() for d in files]
    started = time.monotonic()

    def put(k: int) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            staged = spool / f"staged-{k}"  # as socius spools an upload, then stores it
            await asyncio.to_thread(staged.write_bytes, files[k])
            await store.put(
                f"floor/{k}",
                staged,
                size=len(files[k]),
                sha256=digests[k],
                content_type="application/pdf",
            )

        return job

    def get(k: int) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            async for _ in await store.read(f"floor/{k}"):
                pass

        return job

    await _gather(args.concurrency, [put(k) for k in range(len(files))])
    put_s = time.monotonic() - started
    started = time.monotonic()
    await _gather(args.concurrency, [get(k) for k in range(len(files))])
    get_s = time.monotonic() - started
    await store.delete([f"floor/{k}" for k in range(len(files))])
    for k in range(len(files)):
        (spool / f"staged-{k}").unlink(missing_ok=True)
    return {"upload_mib_per_s": round(mib / put_s, 1), "download_mib_per_s": round(mib / get_s, 1)}


async def main(args: argparse.Namespace) -> int:
    workdir = RESULTS / "tmp" / f"attachments-{int(time.time())}"
    size = int(args.size_mib * MIB)
    files = [b"%PDF-1.7\n" + os.urandom(size - 9) for _ in range(args.files)]
    runs: list[dict[str, dict[str, float]]] = []
    floors: list[dict[str, float]] = []
    async with fresh_stack(
        args.stack,
        workdir,
        postgres_admin_url=args.postgres_url,
        redis_url=args.redis_url,
        tag="attachments",
    ) as stack:
        env = {
            **stack.settings_env(),
            "SOCIUS_UPLOAD_MAX_BYTES": str(size + MIB),
            "SOCIUS_LOG_LEVEL": "warning",
        }
        if args.stack == "postgres":
            env.update(_s3_env(args.s3_url, f"bench-{int(time.time())}"))
        server = ServerProcess(env, port=free_port(), workers=1, log_path=workdir / "server.log")
        await server.start()
        floor_store = _floor_store(env, stack.data_dir)
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                r = await http.post(
                    "/v1/auth/register",
                    json={"username": f"att_{hex(time.time_ns())[-6:]}", "password": PASSWORD},
                )
                r.raise_for_status()
                token = r.json()["access_token"]
            await floor_store.start()
            with tempfile.TemporaryDirectory(dir=stack.data_dir) as spool:
                for _ in range(args.runs):
                    runs.append(await _one_run(server.base_url, token, server, files, args))
                    floors.append(await _floor_run(floor_store, files, Path(spool), args))
        finally:
            await floor_store.close()
            await server.stop()

    def median(phase: str, key: str) -> float:
        return float(statistics.median(r[phase][key] for r in runs))

    summary: dict[str, dict[str, float]] = {}
    for phase in ("upload", "download"):
        floor = float(statistics.median(f[f"{phase}_mib_per_s"] for f in floors))
        summary[phase] = {
            "mib_per_s": median(phase, "mib_per_s"),
            "server_cpu_ms_per_mib": median(phase, "server_cpu_ms_per_mib"),
            "floor_mib_per_s": floor,
            "ratio_to_floor": round(median(phase, "mib_per_s") / floor, 2),
        }
    errors = int(sum(r["errors"]["count"] for r in runs))
    record = {
        "benchmark": "attachments",
        "stack": args.stack,
        "store": "s3 (SeaweedFS)" if args.stack == "postgres" else "files",
        "args": vars(args),
        "machine": machine_info(ROOT),
        "summary": summary,
        "errors": errors,
        "runs": runs,
        "floors": floors,
    }
    await asyncio.to_thread(RESULTS.mkdir, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"attachments-{args.stack}-{stamp}.json"
    await asyncio.to_thread(out.write_text, json.dumps(record, indent=2) + "\n")
    print(json.dumps({**summary, "errors": errors}, indent=2))
    print(f"wrote {out.relative_to(RESULTS.parent.parent)}")
    return 0 if errors == 0 else 1


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--size-mib", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--s3-url",
        default="http://socius-test:socius-test-secret@127.0.0.1:8333/socius-test",
        help="the S3 store of the postgres stack: http://key:secret@host:port/bucket",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_args(sys.argv[1:]))))
