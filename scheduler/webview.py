"""Wiring the web view (:mod:`web`) to the configuration: for the daemon, which serves it
from its own event loop when ``[web] listen`` is set, and for ``topicwatch web``.

The address is checked before anything else starts: any address other than a loopback one
without the token of ``[web] token_env`` is refused (:class:`web.address.ExposureRefused`),
and so is an address already in use (:class:`web.server.WebUnavailable`).
"""

from __future__ import annotations

import asyncio
import signal
import socket

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from scheduler.config import Config
from storage.daemons import running_daemon
from storage.db import session_factory
from web.address import check_exposure, parse_listen
from web.app import DaemonState, StateSource, WebApp
from web.server import WebServer, bind

__all__ = ["DEFAULT_LISTEN", "check_web", "database_state", "serve_alone", "web_server"]

DEFAULT_LISTEN = "127.0.0.1:8080"


def check_web(config: Config, listen: str | None = None) -> tuple[str, int]:
    """The (host, port) to serve on (``listen``, else ``[web] listen``); raises
    :class:`~web.address.ExposureRefused` when that needs a token the environment lacks."""
    host, port = parse_listen(listen or config.web.listen or DEFAULT_LISTEN)
    check_exposure(host, port, config.web.token, config.web.token_env)
    return host, port


def web_server(
    config: Config,
    sessions: sessionmaker[Session],
    state: StateSource,
    *,
    listen: str | None = None,
    own_signals: bool = False,
) -> WebServer:
    """The web view's server, its socket bound; it serves once started."""
    host, port = check_web(config, listen)
    app = WebApp(sessions, state=state, token=config.web.token)
    return WebServer(app, bind(host, port), own_signals=own_signals)


def serve_alone(config: Config, engine: Engine, *, listen: str | None = None) -> int:
    """``topicwatch web``: serve the web view of the database of ``engine`` until SIGTERM
    or SIGINT; the exit code."""
    sessions = session_factory(engine)
    server = web_server(config, sessions, database_state(engine, sessions), listen=listen)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        task = server.start()
        stopped = loop.create_task(stopping.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        await server.stop()

    asyncio.run(main())
    return 0


def database_state(engine: Engine, sessions: sessionmaker[Session]) -> StateSource:
    """What the daemon serving this database is doing, as its ``daemon`` row says (for a web
    view served by ``topicwatch web``, outside the daemon)."""

    def state() -> DaemonState:
        record = running_daemon(engine, sessions)
        if record is None:
            return DaemonState(running=False)
        where = f"pid {record.pid} on {record.host}"
        if record.host == socket.gethostname():
            where = f"pid {record.pid}"
        return DaemonState(
            running=True, started_at=record.started_at, where=where, next_runs=record.next_runs
        )

    return state
