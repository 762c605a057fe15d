"""A local HTTP server standing in for a chat service's webhook: it records every request it
gets and answers each path with the status codes it is given, in turn (the last one then on)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Received:
    path: str
    content_type: str
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class ChannelServer:
    port: int = 0
    answers: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [got for got in self.received if got.path == f"/{path}"]

    def answer(self, path: str) -> int:
        with self.lock:
            codes = self.answers.get(path.lstrip("/"), [200])
            return codes.pop(0) if len(codes) > 1 else codes[0]


@contextmanager
def channel_server() -> Iterator[ChannelServer]:
    state = ChannelServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            code = state.answer(self.path)
            with state.lock:
                state.received.append(
                    Received(self.path, self.headers.get("Content-Type", ""), body)
                )
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
