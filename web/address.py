"""Where the web view listens, and whether it may listen there without a token.

Kept apart from the server (no web framework imported here), so that the configuration can
check ``[web] listen`` cheaply.

The web view is safe by default: it binds 127.0.0.1, which only this machine reaches. Any
other address needs a token (``[web] token_env`` names the environment variable that holds
it); without one, :func:`check_exposure` refuses to start and says so.
"""

from __future__ import annotations

import ipaddress
import json

__all__ = [
    "MIN_TOKEN_LENGTH",
    "ExposureRefused",
    "WebUnavailable",
    "check_exposure",
    "is_loopback",
    "parse_listen",
]

MIN_TOKEN_LENGTH = 16


class ExposureRefused(ValueError):
    """The web view would be reachable from other machines without a token."""


class WebUnavailable(OSError):
    """The web view cannot listen on the address it was given."""


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"[::1]:8080"`` or ``"localhost:8080"`` as (host, port);
    raises ValueError "expected …, got …"."""
    value = text.strip()
    expected = f'expected HOST:PORT like "127.0.0.1:8080", got {json.dumps(text)}'
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or (":" in host and not value.startswith("[")):
        raise ValueError(expected)
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"expected a port from 0 to 65535, got {json.dumps(text)}")
    return host, number


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, port: int, token: str | None, token_env: str) -> None:
    """Raises :class:`ExposureRefused` when listening on ``host`` needs a token that is
    missing or too short to be a secret."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH and token:
        raise ExposureRefused(
            f"the web view's token (environment variable {token_env}) is shorter than "
            f"{MIN_TOKEN_LENGTH} characters; use a long random secret"
        )
    if is_loopback(host) or token:
        return
    raise ExposureRefused(
        f"refusing to serve the web view on {host}:{port} without a token: that address "
        f"is reachable from other machines. Set the environment variable {token_env} to a "
        f"random secret of at least {MIN_TOKEN_LENGTH} characters (clients then send it as "
        f'"Authorization: Bearer TOKEN", or as the password of basic auth), or listen on '
        f"127.0.0.1"
    )
