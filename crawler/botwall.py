"""Bot walls: answers of a bot-protection service instead of the page.

A site behind Cloudflare, DataDome, Imperva, Akamai, HUMAN (PerimeterX), Sucuri or AWS WAF
may answer a crawler with 403, 429 or 503 and a challenge page. Such a failure is not the
site being down and not a plain refusal: it is reported as "blocked by the site's bot
protection", with the service when its signs name it, so that whoever reads the reason knows
to ask the site for access (or to give the topic another source) instead of waiting.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BOT_WALL", "BOT_WALL_STATUSES", "bot_wall_reason"]

BOT_WALL = "blocked by the site's bot protection"
BOT_WALL_STATUSES = (403, 429, 503)
# How much of the body is looked at: challenge pages are small, and their signs come early.
BODY_PREFIX = 64 * 1024

# (service, sign in the lower-cased headers ("name: value" lines), sign in the lower-cased body)
_SIGNS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Cloudflare",
        ("cf-mitigated:", "cf-chl"),
        (
            "cf-chl",
            "challenge-platform",
            "<title>just a moment",
            "attention required! | cloudflare",
        ),
    ),
    ("DataDome", ("x-datadome", "x-dd-b:"), ("captcha-delivery.com", "datadome")),
    ("Imperva", ("x-iinfo:",), ("_incapsula_resource", "incapsula incident")),
    ("HUMAN (PerimeterX)", (), ("px-captcha", "perimeterx", "_pxhd")),
    ("Sucuri", ("x-sucuri-block",), ("sucuri website firewall",)),
    ("AWS WAF", ("x-amzn-waf-action",), ("aws-waf-token", "awswafintegration")),
    ("Akamai", (), ("errors.edgesuite.net",)),
)
_GENERIC = ("g-recaptcha", "h-captcha", "hcaptcha.com", "recaptcha/api.js", "cf-turnstile")


def bot_wall_reason(status: int, headers: Callable[[], str], body: bytes) -> str | None:
    """``blocked by the site's bot protection (Cloudflare, HTTP 403)`` when the answer is a bot
    wall, else None. ``headers`` gives the response's headers as ``name: value`` lines (only
    called for a status a bot wall answers with)."""
    if status not in BOT_WALL_STATUSES:
        return None
    head = headers().lower()
    text = body[:BODY_PREFIX].decode("utf-8", errors="replace").lower()
    service = next(
        (
            name
            for name, in_headers, in_body in _SIGNS
            if any(sign in head for sign in in_headers) or any(sign in text for sign in in_body)
        ),
        None,
    )
    if service is None and not any(sign in text for sign in _GENERIC):
        return None
    named = f"{service}, " if service else ""
    return f"{BOT_WALL} ({named}HTTP {status})"
