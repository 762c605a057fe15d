"""Sending through a real SMTP server (aiosmtpd on 127.0.0.1): TLS, login, refusals."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from mailserver import PASSWORD, USER, MailServer, free_port, mail_server

from alerts.smtp import DeliveryError, SmtpSettings, parse_mailbox, send, send_test_email

SENDER = "topicwatch <alerts@example.org>"


def message(to: str = "desk@example.org", subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = parse_mailbox(SENDER)
    msg["To"] = to
    msg["Message-ID"] = "<fixed-id@example.org>"
    msg.set_content("Body text.\n.\nA line that is only a dot, above.\n")
    return msg


@pytest.fixture
def plain_server() -> Iterator[MailServer]:
    with mail_server(refuse={"nobody@example.org"}) as server:
        yield server


@pytest.fixture
def starttls_server(tmp_path: Path) -> Iterator[MailServer]:
    with mail_server(tls_dir=tmp_path, mode="starttls") as server:
        yield server


def settings_for(server: MailServer, **overrides: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "sender": SENDER,
        "timeout": 10.0,
        "ca_file": server.ca_file,
    }
    values.update(overrides)
    return SmtpSettings(**values)  # type: ignore[arg-type]


def test_send_plain_delivers_once_and_reports_the_reply(plain_server: MailServer) -> None:
    reply = send(settings_for(plain_server), message())

    assert reply == (
        f"127.0.0.1:{plain_server.port} accepted the message for desk@example.org: "
        "250 2.0.0 Message accepted for delivery"
    )
    [received] = plain_server.received
    assert received.mail_from == "alerts@example.org"
    assert received.rcpt_tos == ["desk@example.org"]
    parsed = received.message
    assert parsed["Message-ID"] == "<fixed-id@example.org>"
    assert parsed.get_content().splitlines() == [
        "Body text.",
        ".",
        "A line that is only a dot, above.",
    ]


def test_bcc_is_an_envelope_recipient_but_not_transmitted(plain_server: MailServer) -> None:
    msg = message()
    msg["Bcc"] = "hidden@example.org"

    send(settings_for(plain_server), msg)

    [received] = plain_server.received
    assert sorted(received.rcpt_tos) == ["desk@example.org", "hidden@example.org"]
    assert received.message["Bcc"] is None
    assert msg["Bcc"] == "hidden@example.org"  # the caller's message is left alone


def test_starttls_with_login(starttls_server: MailServer) -> None:
    settings = settings_for(starttls_server, security="starttls", username=USER, password=PASSWORD)

    send(settings, message())

    [received] = starttls_server.received
    assert received.tls
    assert received.authenticated


def test_implicit_tls_with_login(tmp_path: Path) -> None:
    with mail_server(tls_dir=tmp_path, mode="tls") as server:
        settings = settings_for(server, security="tls", username=USER, password=PASSWORD)
        send(settings, message())
        [received] = server.received
    assert received.tls
    assert received.authenticated


def test_wrong_password_is_a_clear_delivery_error(starttls_server: MailServer) -> None:
    settings = settings_for(starttls_server, security="starttls", username=USER, password="no")

    with pytest.raises(DeliveryError) as caught:
        send(settings, message())

    text = str(caught.value)
    assert f"127.0.0.1:{starttls_server.port}" in text
    assert f"rejected the login of user '{USER}'" in text
    assert "535" in text
    assert not caught.value.maybe_delivered
    assert starttls_server.received == []


def test_login_without_tls_is_refused_with_a_hint(starttls_server: MailServer) -> None:
    settings = settings_for(starttls_server, security="none", username=USER, password=PASSWORD)

    with pytest.raises(DeliveryError, match=r"does not offer authentication \(AUTH\)") as caught:
        send(settings, message())

    assert "only after STARTTLS" in str(caught.value)


def test_untrusted_certificate_is_refused(starttls_server: MailServer) -> None:
    settings = settings_for(starttls_server, security="starttls", ca_file=None)

    with pytest.raises(DeliveryError, match="certificate verify failed") as caught:
        send(settings, message())

    assert f"127.0.0.1:{starttls_server.port}" in str(caught.value)
    assert starttls_server.received == []


def test_unverified_tls_when_asked(starttls_server: MailServer) -> None:
    settings = settings_for(starttls_server, security="starttls", ca_file=None, verify_tls=False)

    send(settings, message())

    assert len(starttls_server.received) == 1


def test_starttls_required_but_not_offered(plain_server: MailServer) -> None:
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        send(settings_for(plain_server, security="starttls"), message())


def test_nothing_listening_names_host_and_port() -> None:
    port = free_port()
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5.0)

    with pytest.raises(DeliveryError) as caught:
        send(settings, message())

    assert str(caught.value) == (
        f"Could not connect to the SMTP server 127.0.0.1:{port}: connection refused "
        "(is the server running, and is the port right?)."
    )


def test_server_that_never_greets_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=0.5)

        with pytest.raises(DeliveryError) as caught:
            send(settings, message())

    assert str(caught.value) == (
        f"Could not connect to the SMTP server 127.0.0.1:{port}: no answer within 0.5 seconds."
    )


def test_refused_recipient_gives_code_and_text(plain_server: MailServer) -> None:
    with pytest.raises(DeliveryError) as caught:
        send(settings_for(plain_server), message(to="nobody@example.org"))

    assert str(caught.value) == (
        f"The SMTP server 127.0.0.1:{plain_server.port} refused the recipient "
        "(nobody@example.org: 550 5.1.1 No such user here)."
    )
    assert plain_server.received == []
    assert caught.value.permanent


@pytest.mark.parametrize(
    ("step", "reply", "permanent"),
    [
        ("rcpt", "554 5.7.1 Relay access denied", True),
        ("rcpt", "451 4.7.1 Greylisted, try again later", False),
        ("data", "554 5.6.0 Message rejected", True),
        ("data", "452 4.3.1 Insufficient system storage", False),
    ],
)
def test_a_5xx_refusal_is_permanent_and_a_4xx_one_is_not(
    plain_server: MailServer, step: str, reply: str, permanent: bool
) -> None:
    setattr(plain_server.handler, f"{step}_reply", reply)
    with pytest.raises(DeliveryError) as caught:
        send(settings_for(plain_server), message())

    assert reply in str(caught.value)
    assert caught.value.permanent is permanent
    assert not caught.value.maybe_delivered
    assert plain_server.received == []


def test_partly_refused_recipients_are_named_in_the_reply(plain_server: MailServer) -> None:
    reply = send(settings_for(plain_server), message(to="desk@example.org, nobody@example.org"))

    assert "accepted the message for desk@example.org" in reply
    assert "refused nobody@example.org: 550 5.1.1 No such user here" in reply
    [received] = plain_server.received
    assert received.rcpt_tos == ["desk@example.org"]


def test_send_test_email_reports_what_the_server_said(starttls_server: MailServer) -> None:
    settings = settings_for(starttls_server, security="starttls", username=USER, password=PASSWORD)

    reply = send_test_email(settings, "ops@example.org")

    assert reply.endswith("250 2.0.0 Message accepted for delivery")
    [received] = starttls_server.received
    parsed = received.message
    assert parsed["Subject"] == "[topicwatch] Test email"
    assert parsed["To"] == "ops@example.org"
    body = parsed.get_content()
    assert f"127.0.0.1:{starttls_server.port} (starttls) as {USER}" in body


def test_send_test_email_to_an_invalid_address() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), security="none")

    with pytest.raises(DeliveryError, match="'not an address' is not a valid email address"):
        send_test_email(settings, "not an address")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"host": ""}, "The SMTP host must not be empty."),
        ({"port": 0}, "The SMTP port must be between 1 and 65535, not 0."),
        (
            {"security": "ssl"},
            "The SMTP security must be one of starttls, tls or none, not 'ssl'.",
        ),
        ({"timeout": 0}, "The SMTP timeout must be positive, not 0."),
        (
            {"sender": "topicwatch"},
            "'topicwatch' is not a valid email address "
            "(expected 'name@domain' or 'Name <name@domain>').",
        ),
        (
            {"sender": "a@example.org\r\nBcc: x@example.org"},
            "The email address 'a@example.org\\r\\nBcc: x@example.org' contains a line break.",
        ),
    ],
    ids=["host", "port", "security", "timeout", "sender", "sender-crlf"],
)
def test_settings_say_what_is_wrong(overrides: dict[str, object], error: str) -> None:
    values: dict[str, object] = {"host": "smtp.example.org", **overrides}
    with pytest.raises(ValueError) as caught:
        SmtpSettings(**values)  # type: ignore[arg-type]
    assert str(caught.value) == error


@pytest.mark.parametrize(
    ("text", "display_name", "addr_spec"),
    [
        ("topicwatch <alerts@example.org>", "topicwatch", "alerts@example.org"),
        ("desk@example.org", "", "desk@example.org"),
        ('"Desk, News" <desk@example.org>', "Desk, News", "desk@example.org"),
    ],
)
def test_parse_mailbox(text: str, display_name: str, addr_spec: str) -> None:
    address = parse_mailbox(text)
    assert (address.display_name, address.addr_spec) == (display_name, addr_spec)


@pytest.mark.parametrize("text", ["", "desk", "a@b.org, c@d.org", "Name <a@b.org> junk", "x@"])
def test_parse_mailbox_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a valid email address"):
        parse_mailbox(text)
