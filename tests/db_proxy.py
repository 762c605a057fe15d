"""A TCP proxy on 127.0.0.1 in front of a database server, which a test can cut and freeze.

- ``cut()``: every connection through the proxy is closed and new ones are refused (nothing
  listens on its port), as when the database server goes down;
- ``freeze()``: connections stay open and new ones are accepted, but nothing is forwarded
  either way, as when the server or the network hangs;
- ``restore()``: the proxy forwards again (held data included) and listens again.

The proxy runs an event loop in a thread of the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mailserver import free_port

T = TypeVar("T")
CHUNK = 65536


class DatabaseProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="db proxy", daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.flowing: asyncio.Event | None = None

    def start(self) -> None:
        self.thread.start()
        self._call(self._start())

    def close(self) -> None:
        self.cut()
        self._call(self._cancel_tasks())
        self.cut()  # what a cancelled connection opened upstream meanwhile
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def cut(self) -> None:
        self._call(self._cut())

    def freeze(self) -> None:
        self._call(self._freeze())

    def restore(self) -> None:
        self._call(self._restore())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _start(self) -> None:
        self.flowing = asyncio.Event()
        self.flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _freeze(self) -> None:
        assert self.flowing is not None
        self.flowing.clear()

    async def _restore(self) -> None:
        assert self.flowing is not None
        self.flowing.set()
        if self.server is None:
            await self._listen()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.flowing is not None
        self.writers.add(writer)
        await self.flowing.wait()  # a frozen proxy accepts, and says nothing
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        self.writers.add(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        assert self.flowing is not None
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(CHUNK):
                    await self.flowing.wait()
                    sink.write(data)
                    await sink.drain()
        finally:  # cancelled too: no transport outlives the proxy's loop
            sink.transport.abort()


@contextmanager
def database_proxy(url: str) -> Iterator[tuple[DatabaseProxy, str]]:
    """A proxy in front of the PostgreSQL server of ``url``, and the URL through it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    proxy = DatabaseProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    proxy.start()
    try:
        proxied = parsed.set(host="127.0.0.1", port=proxy.port)
        yield proxy, proxied.render_as_string(hide_password=False)
    finally:
        proxy.close()
