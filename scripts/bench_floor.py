"""The floor under the control plane's slide-change throughput: what this machine gives a bare
ASGI app (no framework, authentication, rate limit, audit or Redis) that answers each POST with
one asyncpg ``UPDATE … RETURNING`` of a version counter, under bench_control_plane's closed-loop
load generator, on the same Postgres (an EphemeralStack's), with uvicorn (uvloop, httptools).

It says how far the product's path is from what the machine, the server and the driver allow;
it is not a figure for Podium. A second variant, ``promises``, adds the least each promise of
Podium's slide change costs (see ``_with_promises``): a key lookup, body validation, the rate
limit and the idempotency key in one Redis pipeline, the change and its audit entry in one
statement, the new state copied and published in one pipeline.

    .venv/bin/python scripts/bench_floor.py [--clients 16 64] [--duration 10] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
Message = MutableMapping[str, Any]
_pool: asyncpg.Pool | None = None
_redis: Redis | None = None
_KEYS = {hashlib.sha256(b"floor-key").hexdigest(): "tenant"}  # an in-process key cache
_RATE = (
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('EXPIRE', KEYS[1], 1) end return n"
)


async def _with_promises(scope: Message, body: bytes, redis: Redis) -> int:
    """The least each promise of Podium's slide change costs, each in as few round trips as it
    can take: the key checked (a cached lookup), the body validated, the rate limit and the
    idempotency key in one Redis pipeline, the change and its audit entry in one statement, the
    new state copied and published in one pipeline."""
    headers = dict(scope["headers"])
    tenant = _KEYS[hashlib.sha256(headers[b"x-api-key"]).hexdigest()]
    action = json.loads(body)["action"]
    if action not in ("next", "previous"):
        raise ValueError(action)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.eval(_RATE, 1, f"rate:{tenant}:{int(time.time())}")
        pipe.set(f"idem:{tenant}:{headers[b'idempotency-key'].decode()}", "1", nx=True, ex=86400)
        await pipe.execute()
    assert _pool is not None
    version = int(
        await _pool.fetchval(
            """
            WITH changed AS (
                UPDATE floor_state SET version = version + 1 WHERE id = 1 RETURNING version
            ), audited AS (
                INSERT INTO floor_audit (tenant, action, detail)
                SELECT $1, $2, jsonb_build_object('version', version) FROM changed
            )
            SELECT version FROM changed
            """,
            tenant,
            action,
        )
    )
    async with redis.pipeline(transaction=False) as pipe:
        state = json.dumps({"version": version, "action": action})
        pipe.set("state:1", state)
        pipe.publish("slides:1", state)
        await pipe.execute()
    return version


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """The floor's ASGI app (run by uvicorn in its own processes)."""
    global _pool, _redis
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _pool = await asyncpg.create_pool(os.environ["FLOOR_DSN"], min_size=4, max_size=10)
                if os.environ.get("FLOOR_REDIS"):
                    _redis = Redis.from_url(os.environ["FLOOR_REDIS"])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:  # read the body, as a real route would
        message = await receive()
        body += message.get("body", b"")
        more = bool(message.get("more_body", False))
    assert _pool is not None
    if _redis is None:
        version = await _pool.fetchval(
            "UPDATE floor_state SET version = version + 1 WHERE id = 1 RETURNING version"
        )
    else:
        version = await _with_promises(scope, body, _redis)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps({"version": version}).encode()})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_listening(port: int, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


async def main() -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_control_plane as bench

    from shared.devstack.stack import EphemeralStack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn processes")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/benchmarks/floor.png")
    args = parser.parse_args()
    if max(args.clients) > 1000 or args.duration > 120 or max(args.workers) > 8:
        parser.error("bounded: at most 1000 clients, 120 s a run and 8 processes")
    load = os.getloadavg()
    runs: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp, EphemeralStack(Path(tmp)) as stack:
        conn = await asyncpg.connect(stack.postgres.url())
        await conn.execute(
            "CREATE TABLE floor_state (id int PRIMARY KEY, version bigint NOT NULL);"
            "INSERT INTO floor_state VALUES (1, 0);"
            "CREATE TABLE floor_audit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(),"
            " tenant text NOT NULL, action text NOT NULL, detail jsonb NOT NULL)"
        )
        await conn.close()

        async def change(http: Any, _no: int) -> tuple[int, float]:
            sent = time.perf_counter()
            headers = {"X-API-Key": "floor-key", "Idempotency-Key": uuid.uuid4().hex}
            async with http.post("/slide", json={"action": "next"}, headers=headers) as resp:
                await resp.read()
                return int(resp.status), sent

        variants = [(w, promises) for promises in (False, True) for w in args.workers]
        for workers, promises in variants:
            port = _free_port()
            env = {**os.environ, "FLOOR_DSN": stack.postgres.url()}
            if promises:
                env["FLOOR_REDIS"] = stack.redis.url()
            server = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "uvicorn", "bench_floor:app", "--app-dir",
                str(ROOT / "scripts"), "--port", str(port), "--loop", "uvloop", "--http",
                "httptools", "--workers", str(workers), "--log-level", "warning",
                "--no-access-log",
                env=env,
            )  # fmt: skip
            try:
                await _wait_listening(port)
                await asyncio.sleep(2)  # every worker process up
                meter = bench.CpuMeter(
                    {
                        "api": server.pid,
                        "postgres": bench._pid(stack.postgres.process),
                        "redis": bench._pid(stack.redis.process),
                        "loadgen": os.getpid(),
                    }
                )
                for clients in args.clients:
                    name = f"{'promises' if promises else 'floor'} x{workers}"
                    run = bench.Run(name, clients, args.duration)
                    await bench.closed_loop(f"http://127.0.0.1:{port}", run, change, meter)
                    runs.append(run)
                    print(bench.table([run]).splitlines()[1], flush=True)
            finally:
                server.terminate()
                await asyncio.wait_for(server.wait(), 30)
    end_load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores; load average before {load[0]:.2f}, after {end_load[0]:.2f}")
    print(bench.table(runs))
    bench.plot(runs, args.plot, f"floor: bare ASGI + one UPDATE; load avg {load[0]:.1f}")
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    asyncio.run(main())
