"""A stand-in for Sentry's ingestion endpoint on 127.0.0.1, for tests of what reaches Sentry."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sentry_sdk.envelope import Envelope


class SentryServer:
    """A stand-in for Sentry's ingestion endpoint on 127.0.0.1 that keeps every envelope."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.bodies: list[bytes] = []  # each envelope as sent, decompressed
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "br":
                    import brotli

                    body = brotli.decompress(body)
                with outer.lock:
                    outer.bodies.append(body)
                    outer.envelopes.append(Envelope.deserialize(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.dsn = f"http://public@127.0.0.1:{self.server.server_address[1]}/1"

    def items(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                json.loads(item.payload.get_bytes())
                for envelope in self.envelopes
                for item in envelope.items
                if item.type == kind
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
