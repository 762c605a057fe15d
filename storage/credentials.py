"""Credentials shown masked: URLs with ``user:password@`` and ``password=…`` settings.

Database URLs (``postgresql+psycopg://user:secret@host/db``), source URLs and proxy URLs may
carry a password, and they end up in error messages, listings, log lines and Sentry events.
:func:`mask_credentials` keeps all of such a text but the passwords, so an operator still
sees which server and which user were meant.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@ — the password runs to the last '@' before the next blank, so a
# password with an unencoded '@' or '/' is masked whole. The bounds keep the search linear
# in hostile text (a page's 100,000-character title).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/@\"'<>]{0,256}:)(?P<password>\S{0,1024})@"
)
# The text after "host:" that is a port followed by a path, not a password.
_PORT_AND_PATH = re.compile(r"^\d{1,5}[/?#]")
# key=value settings of libpq connection strings (and the like): password=secret.
_KEY_VALUE_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|[^\s,;&)]+)",
    re.IGNORECASE,
)


def mask_credentials(text: str) -> str:
    """``text`` with the password of every URL in it, and of every ``password=…``
    setting, replaced by ``***``::

        >>> mask_credentials("postgresql://alice:s3cret@db.example.org/topicwatch")
        'postgresql://alice:***@db.example.org/topicwatch'
    """
    if "@" in text:
        text = _URL_PASSWORD.sub(_mask_url_password, text)
    if "=" in text:
        text = _KEY_VALUE_PASSWORD.sub(rf"\g<head>{MASK}", text)
    return text


def _mask_url_password(match: re.Match[str]) -> str:
    password = match.group("password")
    if _PORT_AND_PATH.match(password):
        # host:8080/path/@name: a port, and an '@' further on in the path.
        return match.group(0)
    return f"{match.group('head')}{MASK}@"
