"""A TCP round-robin balancer on loopback: the multi-node stack's stand-in for a Kubernetes
Service in front of several replicas (control planes, livekit-server nodes).

Each new connection goes to the next backend in turn; a backend that refuses the connection is
skipped for that connection, so a dead replica costs a client nothing but a retried connect.
Bytes are copied both ways until either side closes. Run as its own process:
``python -m shared.devstack.balancer LISTEN_PORT BACKEND_PORT...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


class Balancer:
    def __init__(self, backends: list[int]) -> None:
        self._backends = backends
        self._turn = itertools.cycle(range(len(backends)))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        first = next(self._turn)
        for i in range(len(self._backends)):
            port = self._backends[(first + i) % len(self._backends)]
            with contextlib.suppress(OSError):
                return await asyncio.open_connection("127.0.0.1", port)
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:  # every backend is down: the client sees a reset, as behind a VIP
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def serve(port: int, backends: list[int]) -> None:
    balancer = Balancer(backends)
    server = await asyncio.start_server(balancer.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    port, *backends = (int(a) for a in argv)
    asyncio.run(serve(port, backends))


if __name__ == "__main__":
    main(sys.argv[1:])
