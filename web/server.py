"""Serving the web view with uvicorn, inside an asyncio loop that is already running.

The daemon serves it from its own event loop as one more task (:meth:`WebServer.serve`),
beside the scheduler; ``topicwatch web`` runs the same server alone. The listening socket is
bound before the server starts (:func:`bind`), so an address in use is a clear error at
start-up rather than a log line from inside the server.

Inside the daemon the server leaves the process's signals alone (the daemon's own handlers
stop it, see :meth:`WebServer.stop`); alone, it stops on SIGTERM and SIGINT itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from web.address import WebUnavailable
from web.app import WebApp

__all__ = ["WebServer", "WebUnavailable", "bind"]

logger = logging.getLogger(__name__)
STOP_TIMEOUT = 5


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; raises :class:`WebUnavailable`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise WebUnavailable(f"Cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise WebUnavailable(f"Cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, minus its signal handlers: the daemon keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The web view's HTTP server on a bound socket."""

    def __init__(self, app: WebApp, sock: socket.socket, *, own_signals: bool = False) -> None:
        self.app = app
        self.socket = sock
        config = uvicorn.Config(
            app.asgi,
            log_config=None,
            log_level="warning",  # the view's own line says where it serves
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=STOP_TIMEOUT,
        )
        self.server = uvicorn.Server(config) if own_signals else _Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or, with its own signals, SIGTERM/SIGINT)."""
        logger.info("Web view on http://%s/", self.address)
        await self.server.serve(sockets=[self.socket])

    def start(self) -> asyncio.Task[None]:
        """:meth:`serve` as a task of the running loop."""
        self.task = asyncio.get_running_loop().create_task(self.serve())
        return self.task

    async def stop(self) -> None:
        """Stop serving: open requests get up to ``STOP_TIMEOUT`` seconds to finish."""
        self.server.should_exit = True
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, STOP_TIMEOUT * 2)
            except (TimeoutError, Exception) as exc:  # a failed server must not stop a stop
                logger.warning("The web view did not stop cleanly: %s", exc)
        self.socket.close()
