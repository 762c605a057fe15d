"""Sending email through the configured SMTP server.

One function sends one message (:func:`send`); it connects, secures the connection
(STARTTLS or implicit TLS), logs in when a user is configured, hands the message over and
returns what the server replied. Everything that can go wrong on the way is raised as a
:class:`DeliveryError` whose message names the server (``host:port``), the step that failed and,
where the server refused something, its SMTP code and text.

Exceptions::

    OSError
     └── DeliveryError      the message was not accepted; nothing was delivered

(a message accepted for some of several recipients is not an error: the reply names the
refused ones; ``DeliveryError.maybe_delivered`` marks the one ambiguous case, a connection
lost while the server was confirming the message; ``DeliveryError.permanent`` marks a
5xx refusal of the recipient or of the message itself, which sending the same message again
cannot overcome.)
"""

from __future__ import annotations

import copy
import email.generator
import email.policy
import email.utils
import io
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.headerregistry import Address, AddressHeader, HeaderRegistry
from email.message import EmailMessage
from typing import Literal

__all__ = [
    "DeliveryError",
    "SmtpSettings",
    "parse_mailbox",
    "send",
    "send_test_email",
]

Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: tuple[Security, ...] = ("starttls", "tls", "none")


class DeliveryError(OSError):
    """An email was not accepted by the SMTP server; the message says where and why.

    ``maybe_delivered`` is True when the connection broke after the whole message had been
    sent but before the server confirmed it: the server may have accepted it after all.
    ``permanent`` is True when the server refused the recipient or the message with a 5xx
    reply: the same message would be refused again. Refusals of the connection, the login or
    the sender are never permanent in this sense: they come from the settings or the server's
    state, and a corrected configuration or a recovered server delivers the message as it is.
    """

    def __init__(
        self, message: str, *, maybe_delivered: bool = False, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.maybe_delivered = maybe_delivered
        self.permanent = permanent


def parse_mailbox(text: str) -> Address:
    """An address such as ``"topicwatch <alerts@example.org>"`` or ``"desk@example.org"``.

    Parsed by the standard library's address-header parser. Raises ValueError, naming the
    text, when it is not exactly one valid mailbox.
    """
    if any(ch in text for ch in "\r\n"):
        raise ValueError(f"The email address {text!r} contains a line break.")
    expected = "expected 'name@domain' or 'Name <name@domain>'"
    try:
        header = _HEADERS("To", text)
    except (HeaderParseError, IndexError, ValueError) as exc:
        raise ValueError(f"{text!r} is not a valid email address ({expected}).") from exc
    addresses = header.addresses if isinstance(header, AddressHeader) else ()
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    if len(addresses) != 1 or defects or not addresses[0].domain:
        raise ValueError(f"{text!r} is not a valid email address ({expected}).")
    return addresses[0]


_HEADERS = HeaderRegistry()


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the SMTP server. The password is already resolved from the environment."""

    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "topicwatch <topicwatch@localhost>"
    timeout: float = 30.0
    verify_tls: bool = True
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("The SMTP host must not be empty.")
        if not 0 < self.port < 65536:
            raise ValueError(f"The SMTP port must be between 1 and 65535, not {self.port}.")
        if self.security not in SECURITY_MODES:
            raise ValueError(
                f"The SMTP security must be one of starttls, tls or none, not {self.security!r}."
            )
        if self.timeout <= 0:
            raise ValueError(f"The SMTP timeout must be positive, not {self.timeout}.")
        parse_mailbox(self.sender)

    @property
    def server(self) -> str:
        """``host:port``, as error messages name the server."""
        return f"{self.host}:{self.port}"

    @property
    def sender_address(self) -> Address:
        return parse_mailbox(self.sender)


def send(settings: SmtpSettings, message: EmailMessage) -> str:
    """Hand ``message`` to the SMTP server; return a one-line summary of the server's reply.

    Recipients are taken from the message's To, Cc and Bcc headers (Bcc is not transmitted);
    the envelope sender is the configured sender. Raises :class:`DeliveryError` when the
    message was not accepted.
    """
    envelope_from = settings.sender_address.addr_spec
    recipients = [
        address.addr_spec
        for name in ("To", "Cc", "Bcc")
        for header in message.get_all(name, [])
        for address in header.addresses
    ]
    if not recipients:
        raise DeliveryError(
            f"Not sending to {settings.server}: the message has no recipient "
            "(no To, Cc or Bcc header)."
        )
    where = f"SMTP server {settings.server}"
    smtp = _connect(settings)
    try:
        _secure_and_login(smtp, settings)
        return _transmit(smtp, settings, message, envelope_from, recipients)
    except DeliveryError:
        raise
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):
            raise DeliveryError(
                f"The {where} did not answer within {settings.timeout:g} seconds."
            ) from exc
        raise DeliveryError(f"The {where} closed the connection unexpectedly: {exc}.") from exc
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"The {where} answered with an error: {_reply(exc.smtp_code, exc.smtp_error)}."
        ) from exc
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"Sending through the {where} failed: {exc}.") from exc
    except TimeoutError as exc:
        raise DeliveryError(
            f"The {where} did not answer within {settings.timeout:g} seconds."
        ) from exc
    except ssl.SSLError as exc:
        raise DeliveryError(f"TLS with the {where} failed: {exc}.") from exc
    except OSError as exc:
        raise DeliveryError(f"Talking to the {where} failed: {exc}.") from exc
    finally:
        _close(smtp)


def send_test_email(settings: SmtpSettings, address: str) -> str:
    """Send a short test message to ``address``; return exactly what the server replied.

    This proves the SMTP settings end to end: connection, TLS, login, sender and recipient.
    """
    try:
        recipient = parse_mailbox(address)
    except ValueError as exc:
        raise DeliveryError(f"Cannot send a test email: {exc}") from exc
    sender = settings.sender_address
    message = EmailMessage()
    message["Subject"] = "[topicwatch] Test email"
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = email.utils.format_datetime(datetime.now(UTC))
    message["Message-ID"] = email.utils.make_msgid(domain=sender.domain or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    login = f" as {settings.username}" if settings.username else " without login"
    message.set_content(
        "This is a test email from topicwatch.\n\n"
        f"It was sent through {settings.server} ({settings.security}){login}, "
        f"from {sender.addr_spec} to {recipient.addr_spec}.\n"
        "If you can read this, change alerts can reach this address.\n",
        cte="quoted-printable",
    )
    return send(settings, message)


# --- the SMTP conversation -------------------------------------------------------------------


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    where = f"the SMTP server {settings.server}"
    try:
        if settings.security == "tls":
            return smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout,
                context=_tls_context(settings),
            )
        return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    except ConnectionRefusedError as exc:
        raise DeliveryError(
            f"Could not connect to {where}: connection refused (is the server running, "
            "and is the port right?)."
        ) from exc
    except socket.gaierror as exc:
        raise DeliveryError(
            f"Could not connect to {where}: the host name {settings.host!r} could not be "
            f"resolved ({exc.strerror})."
        ) from exc
    except TimeoutError as exc:
        raise DeliveryError(
            f"Could not connect to {where}: no answer within {settings.timeout:g} seconds."
        ) from exc
    except ssl.SSLError as exc:
        raise DeliveryError(
            f"Could not connect to {where}: the TLS handshake failed: {exc}."
        ) from exc
    except smtplib.SMTPConnectError as exc:
        raise DeliveryError(
            f"Could not connect to {where}: it refused the session with "
            f"{_reply(exc.smtp_code, exc.smtp_error)}."
        ) from exc
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):
            # smtplib reports a greeting that never came as a disconnection.
            raise DeliveryError(
                f"Could not connect to {where}: no answer within {settings.timeout:g} seconds."
            ) from exc
        raise DeliveryError(
            f"Could not connect to {where}: it closed the connection before greeting ({exc})."
        ) from exc
    except OSError as exc:
        raise DeliveryError(f"Could not connect to {where}: {exc}.") from exc


def _secure_and_login(smtp: smtplib.SMTP, settings: SmtpSettings) -> None:
    where = f"The SMTP server {settings.server}"
    smtp.ehlo_or_helo_if_needed()
    if settings.security == "starttls":
        if not smtp.has_extn("starttls"):
            raise DeliveryError(
                f"{where} does not offer STARTTLS; set security to 'tls' if it expects TLS "
                "from the start, or 'none' to send unencrypted."
            )
        try:
            smtp.starttls(context=_tls_context(settings))
        except ssl.SSLError as exc:
            raise DeliveryError(f"STARTTLS with {where[4:]} failed: {exc}.") from exc
        smtp.ehlo()
    if settings.username is None:
        return
    if not smtp.has_extn("auth"):
        hint = " (many servers offer it only after STARTTLS)" if settings.security == "none" else ""
        raise DeliveryError(
            f"{where} does not offer authentication (AUTH) on this connection{hint}, "
            f"so user {settings.username!r} cannot log in."
        )
    try:
        smtp.login(settings.username, settings.password or "")
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"{where} rejected the login of user {settings.username!r}: "
            f"{_reply(exc.smtp_code, exc.smtp_error)}."
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(f"{where} offers no login method topicwatch supports: {exc}.") from exc


def _transmit(
    smtp: smtplib.SMTP,
    settings: SmtpSettings,
    message: EmailMessage,
    envelope_from: str,
    recipients: list[str],
) -> str:
    where = f"The SMTP server {settings.server}"
    options: list[str] = []
    policy = email.policy.SMTP
    if not all(addr.isascii() for addr in (envelope_from, *recipients)):
        if not smtp.has_extn("smtputf8"):
            raise DeliveryError(
                f"{where} does not support internationalised addresses (SMTPUTF8), which "
                f"{', '.join([envelope_from, *recipients])} need."
            )
        options = ["SMTPUTF8", "BODY=8BITMIME"]
        policy = email.policy.SMTPUTF8
    # As smtplib's send_message does: a shallow copy whose header list is rebuilt on delete.
    transmitted = copy.copy(message)
    del transmitted["Bcc"]
    del transmitted["Resent-Bcc"]
    with io.BytesIO() as buffer:
        email.generator.BytesGenerator(buffer, policy=policy).flatten(transmitted)
        data = buffer.getvalue()

    code, text = smtp.mail(envelope_from, options)
    if code != 250:
        smtp.rset()
        raise DeliveryError(f"{where} refused the sender {envelope_from}: {_reply(code, text)}.")
    refused: dict[str, str] = {}
    permanently = True
    for recipient in recipients:
        code, text = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = _reply(code, text)
            permanently = permanently and _permanent(code)
    if len(refused) == len(recipients):
        smtp.rset()
        details = "; ".join(f"{rcpt}: {reply}" for rcpt, reply in refused.items())
        raise DeliveryError(f"{where} refused the recipient ({details}).", permanent=permanently)
    try:
        code, text = smtp.data(data)
    except smtplib.SMTPDataError as exc:
        # The server refused to take the message: nothing was delivered.
        raise DeliveryError(
            f"{where} refused the message: {_reply(exc.smtp_code, exc.smtp_error)}.",
            permanent=_permanent(exc.smtp_code),
        ) from exc
    except OSError as exc:
        raise DeliveryError(
            f"The connection to the SMTP server {settings.server} broke while the message was "
            f"being transmitted or confirmed ({str(exc) or type(exc).__name__}); the server may or "
            "may not have accepted it.",
            maybe_delivered=True,
        ) from exc
    if code != 250:
        smtp.rset()
        raise DeliveryError(
            f"{where} did not accept the message: {_reply(code, text)}.",
            permanent=_permanent(code),
        )
    accepted = [rcpt for rcpt in recipients if rcpt not in refused]
    summary = (
        f"{settings.server} accepted the message for {', '.join(accepted)}: {_reply(code, text)}"
    )
    if refused:
        summary += "; refused " + "; ".join(f"{r}: {reply}" for r, reply in refused.items())
    return summary


def _permanent(code: int) -> bool:
    """A 5xx reply: RFC 5321's permanent negative completion."""
    return 500 <= code < 600


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
