"""A well-behaved client of ``miaudit serve`` beside slow, oversized and malformed ones.

Where it sits: the ``serve`` command, seen as an attacker of the service would
see it. One process runs ``miaudit serve`` (under a file-descriptor limit, as a
small container has); a second process runs the abuse mix on 127.0.0.1:

- ``slow``: connections that trickle their request headers one byte a second,
  reconnecting whenever the server drops them;
- ``slow-body``: authenticated requests that declare a body and trickle it;
- ``big``: authenticated clients posting, back to back, bodies of ``--max-body``
  bytes made of empty records (millions of ``[]``);
- ``malformed``: clients posting deeply nested JSON, 5,000-digit integers,
  invalid JSON and requests that are not HTTP.

Meanwhile a well-behaved client asks for the same 20 records every 0.1 s and
checks every answer against the one it got before the abuse began. The script
prints that client's answers (correct / wrong / failed), its median and worst
latency, the server's peak resident memory (``VmHWM``) and the size of its log.

Run: ``.venv/bin/python bench/service_abuse.py [--seconds 20] [--slow 300]
[--slow-body 20] [--big 4] [--malformed 2] [--nofile 256]``.

Measured on the 2-core development VM (server, abuse and client share the two
cores), 20 s each; "before" is commit fae365e, "after" the commit that added this
script, both with the client on a new connection per request::

    mix              answers (ok/wrong/failed)  median   p90    worst  server start → peak
    default, before        9 / 0 / 0            0.02 s  4.46 s  22.2 s   433 → 681 MB (log 34.9 MB)
    default, after       137 / 0 / 0            0.13 s  0.21 s   0.4 s   433 → 515 MB (log 0.4 MB)
    --big 50 only, before 43 / 0 / 0            0.03 s  0.12 s  22.7 s   433 → 980 MB
    --big 50 only, after 171 / 0 / 0            0.12 s  0.13 s   0.4 s   434 → 559 MB

Before, the 300 slow connections held every file descriptor (each failed accept
logged a traceback: 35 MB of log) and each 8 MiB body of empty records held the
event loop for over a second while it was parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

TOKEN = "abuse-token"


def train_target(folder: Path) -> None:
    from miaudit.config import make_config
    from miaudit.pipeline import train_target_only

    config = make_config({"dataset": "adult", "target_size": 600, "target": {"epochs": 10}})
    train_target_only(config, folder)


def start_server(
    folder: Path, nofile: int, log: Path, more: list[str]
) -> tuple[subprocess.Popen, str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [sys.executable, "-m", "miaudit.cli", "serve", str(folder), "--port", "0", *more],
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        text=True,
        env={**os.environ, "MIAUDIT_TOKEN": TOKEN},
        preexec_fn=limit,
    )
    line = proc.stdout.readline()
    if " on " not in line:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}; see {log}")
    return proc, line.split(" on ")[1].split(";")[0]


def memory_mb(pid: int, field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (the peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------- the abuse mix
#: Request headers left unfinished, then trickled one byte a second.
SLOW_HEADERS = (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a")
#: Whole headers of an authenticated request, then its body trickled.
SLOW_BODY = (
    (
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\n"
        '{"records": ['
    ).encode(),
    b" ",
)


async def _trickle(host: str, port: int, stop: float, start: bytes, drip: bytes) -> None:
    """Send ``start``, then ``drip`` once a second; reconnect whenever dropped."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(start)
            while time.monotonic() < stop:
                await asyncio.sleep(1)
                writer.write(drip)
                await writer.drain()
                if reader.at_eof():
                    break
            writer.close()
        except OSError:
            await asyncio.sleep(0.2)


async def _post_loop(url: str, bodies: list[bytes], stop: float) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=120) as client:
        i = 0
        while time.monotonic() < stop:
            try:
                await client.post(
                    f"{url}/v1/predict", content=bodies[i % len(bodies)], headers=headers
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
            i += 1


async def _not_http(host: str, port: int, stop: float) -> None:
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.05)


async def abuse(url: str, args: argparse.Namespace) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stop = time.monotonic() + args.seconds
    empty = b'{"records": [' + b",".join([b"[]"] * ((args.max_body - 20) // 3)) + b"]}"
    malformed = [
        b'{"records": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        b'{"records": [' + b"9" * 5000 + b"]}",
        b'{"records": [{"age": ',
        b'{"records": [{"age": 1e308}]}',
    ]
    tasks = [_trickle(host, int(port), stop, *SLOW_HEADERS) for _ in range(args.slow)]
    tasks += [_trickle(host, int(port), stop, *SLOW_BODY) for _ in range(args.slow_body)]
    tasks += [_post_loop(url, [empty], stop) for _ in range(args.big)]
    tasks += [_post_loop(url, malformed, stop) for _ in range(args.malformed)]
    tasks += [_not_http(host, int(port), stop) for _ in range(args.malformed)]
    await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- the measurement
def well_behaved(url: str, X: np.ndarray, schema, classes: list[str], args) -> dict:
    """The audit's own HTTP client, asking for the same records every 0.1 s (on a new
    connection each time unless ``--keep-alive``)."""
    from miaudit.errors import TargetError
    from miaudit.remote import HttpTarget

    latencies, wrong, failed, seconds = [], 0, 0, args.seconds
    keep = 4 if args.keep_alive else 0
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=keep))
    with HttpTarget(
        url, schema, classes, token=TOKEN, cache_dir=False, timeout=30, transport=transport
    ) as target:
        expected = target.predict_proba(X)
        ready.set()
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            t0 = time.monotonic()
            try:
                if not np.array_equal(target.predict_proba(X), expected):
                    wrong += 1
            except TargetError:
                failed += 1
            latencies.append(time.monotonic() - t0)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
        retries = target.retries_
    return {
        "ok": len(latencies) - wrong - failed,
        "wrong": wrong,
        "failed": failed,
        "retries": retries,
        "median": float(np.median(latencies)),
        "p90": float(np.quantile(latencies, 0.9)),
        "worst": float(np.max(latencies)),
    }


ready = threading.Event()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--slow", type=int, default=300)
    p.add_argument("--slow-body", type=int, default=20)
    p.add_argument("--big", type=int, default=4)
    p.add_argument("--malformed", type=int, default=2)
    p.add_argument("--nofile", type=int, default=256)
    p.add_argument("--max-body", type=int, default=8 * 2**20)
    p.add_argument("--keep-alive", action="store_true", help="Reuse connections.")
    p.add_argument("--server-args", default="", help="More options of `miaudit serve`.")
    p.add_argument("--log", type=Path, help="Keep the server's log in this file.")
    p.add_argument("--abuse-url", help=argparse.SUPPRESS)
    return p


def run_mix(folder: Path, args: argparse.Namespace, argv: list[str]) -> dict:
    """Serve ``folder``, run the well-behaved client beside the abuse mix; the figures."""
    from miaudit.data import load_dataset
    from miaudit.protocol import InputSchema

    data = load_dataset("adult")
    schema = InputSchema.for_dataset(data)
    ready.clear()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        server, url = start_server(folder, args.nofile, log, args.server_args.split())
        try:
            result: dict = {}
            client = threading.Thread(
                target=lambda: result.update(
                    well_behaved(url, data.X[:20], schema, data.class_names, args)
                )
            )
            client.start()
            ready.wait(60)
            result["start_mb"] = memory_mb(server.pid, "VmRSS")
            attackers = subprocess.Popen(
                [sys.executable, __file__, *argv, "--abuse-url", url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            client.join()
            attackers.wait(timeout=300)
            result["peak_mb"] = memory_mb(server.pid, "VmHWM")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        result["log"] = log.read_text(errors="replace")
    return result


def main() -> None:
    args = parser().parse_args()
    if args.abuse_url:  # the abuse process
        asyncio.run(abuse(args.abuse_url, args))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "target"
        train_target(folder)
        r = run_mix(folder, args, sys.argv[1:])
    if args.log:
        args.log.write_text(r["log"])
    print(
        f"{'answers (ok/wrong/failed)':>26}  {'median':>7}  {'p90':>7}  {'worst':>7}  "
        f"{'server start → peak':>20}  {'server log':>10}"
    )
    print(
        f"{r['ok']:>14} / {r['wrong']} / {r['failed']:<5}  {r['median']:>6.2f}s  "
        f"{r['p90']:>6.2f}s  {r['worst']:>6.1f}s  {r['start_mb']:>8,.0f} → {r['peak_mb']:,.0f} MB  "
        f"{len(r['log']) / 2**20:>7.1f} MB"
    )
    print(f"the client retried {r['retries']} requests (answered 503 or timed out)")


if __name__ == "__main__":
    main()
