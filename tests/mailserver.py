"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), with optional STARTTLS and AUTH.

``mail_server(...)`` starts one on a free port and yields a :class:`MailServer` whose
``messages`` are the envelopes received, parsed with ``email.policy.default``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER = "alerts@example.org"
PASSWORD = "s3cret-passw0rd"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Handler:
    refuse: set[str] = field(default_factory=set)
    # Seconds to wait, after storing a message, before confirming it.
    reply_delay: float = 0.0
    # A refusal to answer every RCPT, or every DATA, with (e.g. "554 5.7.1 Rejected").
    rcpt_reply: str | None = None
    data_reply: str | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        with self.lock:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=envelope.original_content or envelope.content,
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    authenticated=bool(session.authenticated),
                )
            )
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        return "250 2.0.0 Message accepted for delivery"


@dataclass
class MailServer:
    host: str
    port: int
    handler: Handler
    ca_file: str | None = None

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "topicwatch test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "smtp-cert.pem"
    key_file = directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@contextmanager
def mail_server(
    *,
    tls_dir: Path | None = None,
    mode: str = "none",
    refuse: set[str] | None = None,
    port: int | None = None,
) -> Iterator[MailServer]:
    """An SMTP server on 127.0.0.1.

    ``mode``: "none" (plain, no AUTH), "starttls" (STARTTLS offered, AUTH LOGIN/PLAIN only
    after it) or "tls" (implicit TLS, AUTH). ``tls_dir`` is where the certificate is written.
    """
    handler = Handler(refuse=set(refuse or ()))
    kwargs: dict[str, Any] = {}
    ca_file: str | None = None
    if mode != "none":
        assert tls_dir is not None
        cert_file, key_file = make_certificate(tls_dir)
        ca_file = str(cert_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        if mode == "starttls":
            kwargs.update(authenticator=authenticator, auth_require_tls=True, tls_context=context)
        else:
            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls.
            kwargs.update(authenticator=authenticator, auth_require_tls=False, ssl_context=context)
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port or free_port(),
        ready_timeout=10.0,
        server_hostname="localhost",
        **kwargs,
    )
    controller.start()
    try:
        yield MailServer("127.0.0.1", controller.port, handler, ca_file)
    finally:
        controller.stop()
