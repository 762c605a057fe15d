"""The read-only web view: pages of topics, changes, runs and article diffs; Atom feeds;
``/metrics`` and ``/healthz``. A Starlette application, rendered on the server with Jinja2.

Pages:

- ``/`` — one row per topic: last run, why it fails, next run, articles tracked; the daemon.
- ``/changes`` and ``/topics/NAME`` — recent changes (``?kind=`` filters), the topic's runs.
- ``/articles/ID`` — every version; the diff of two (``?from=&to=``), inline as the emails
  show it and side by side, made by :mod:`alerts.diff` as for the emails.
- ``/runs`` — recent runs with their log summary and failures.
- ``/feeds/all.atom`` and ``/feeds/NAME.atom`` — the Atom feeds of :mod:`alerts.feed`.
- ``/metrics`` (Prometheus), ``/healthz`` (200 while the database answers and, inside the
  daemon, the scheduler runs; else 503).

Every request's database work and rendering runs in a worker thread, never on the event loop
(the daemon's loop schedules the crawls). Scraped text is escaped everywhere: Jinja2's
autoescape for the templates, :mod:`alerts.diff` for the diffs. Responses carry a
Content-Security-Policy that allows no script at all and styles only from the view's own
style sheet and the diffs' style attributes. With a token, every page but ``/healthz`` asks
for it (``Authorization: Bearer TOKEN``, or basic auth with the token as password); without
one, only requests for a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``) are answered,
so that no web page elsewhere can read the view through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.diff import diff_html, has_changes, side_html, word_diff
from alerts.digest import DIFFED_FIELDS, one_line
from alerts.feed import build_feed
from storage.browse import (
    ArticleView,
    UnknownArticleId,
    article_view,
    ping,
    recent_changes,
    recent_runs,
    topic_id,
    topics_overview,
)
from storage.db import DATABASE_ERRORS, describe_error
from storage.health import FAILED_RUN_STATUSES
from storage.spec import CHANGE_KINDS
from web.address import is_loopback
from web.metrics import CONTENT_TYPE, Metrics

__all__ = ["CSP", "DaemonState", "WebApp"]

logger = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; style-src-elem 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
OPEN_PATHS = frozenset({"/healthz"})
RUNS_ON_TOPIC_PAGE = 10


@dataclass(frozen=True)
class DaemonState:
    """What the page header and ``/healthz`` say about the daemon."""

    running: bool
    started_at: datetime | None = None
    where: str = ""
    next_runs: Mapping[str, datetime] = field(default_factory=dict)
    # Whether this process is the daemon (then /healthz needs its scheduler alive).
    in_process: bool = False


StateSource = Callable[[], DaemonState]


def package_version() -> str:
    try:
        return version("topicwatch")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "unknown"


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 90:
        text = f"{seconds:.0f}s"
    elif seconds < 5400:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 2 * 86400:
        text = f"{seconds / 3600:.0f} h"
    else:
        text = f"{seconds / 86400:.0f} days"
    return f"in {text}" if future else f"{text} ago"


def _duration(value: timedelta | None) -> str:
    return "—" if value is None else f"{value.total_seconds():.1f}s"


def _href(url: str) -> str | None:
    """``url`` when it is an http(s) link (it is escaped by the template); else None."""
    url = one_line(url)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(utc=_utc, ago=_ago, duration=_duration, href=_href, one_line=one_line)
    env.globals.update(
        kinds=CHANGE_KINDS,
        query=lambda **kw: urlencode({k: v for k, v in kw.items() if v not in (None, "")}),
    )
    return env


class _Guard:
    """Security headers on every response; the token on every path but ``/healthz``."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        if self.token is None and scope["path"] not in OPEN_PATHS and not self.local(scope):
            # Without a token, only a client that asked for this machine by a loopback name
            # is answered: a web page elsewhere cannot read the view through DNS rebinding.
            response = PlainTextResponse(
                "Without a token, this topicwatch web view answers only requests for "
                "localhost, 127.0.0.1 or [::1]; set a token to serve it under another name.\n",
                status_code=421,
            )
            await response(scope, receive, send_secured)
            return
        if self.token is not None and scope["path"] not in OPEN_PATHS:
            headers = dict(scope.get("headers", []))
            if not self.authorized(headers.get(b"authorization", b"")):
                response = PlainTextResponse(
                    "This topicwatch web view needs its token: send it as "
                    '"Authorization: Bearer TOKEN" or as the password of basic auth.\n',
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="topicwatch", charset="UTF-8"'},
                )
                await response(scope, receive, send_secured)
                return
        await self.app(scope, receive, send_secured)

    @staticmethod
    def local(scope: Scope) -> bool:
        host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").strip()
        if host.startswith("["):
            name = host[1:].partition("]")[0]
        else:
            name = host.rpartition(":")[0] if ":" in host else host
        return bool(name) and is_loopback(name)

    def authorized(self, header: bytes) -> bool:
        assert self.token is not None
        scheme, _, credentials = header.partition(b" ")
        given = credentials.strip()
        if scheme.lower() == b"basic":
            try:
                given = base64.b64decode(given, validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        elif scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(given, self.token)


class WebApp:
    """The web view of one database. ``state`` tells what the daemon is doing; it is called
    in a worker thread."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        state: StateSource,
        token: str | None = None,
    ) -> None:
        self.sessions = session_factory
        self.state = state
        self.version = package_version()
        self.templates = _environment()
        self.metrics = Metrics(session_factory, version=self.version)
        self.css = resources.files("web").joinpath("static/style.css").read_bytes()
        routes = [
            Route("/", self.page(self.topics_page)),
            Route("/changes", self.page(self.changes_page)),
            Route("/topics/{name}", self.page(self.topic_page)),
            Route("/articles/{article:int}", self.page(self.article_page)),
            Route("/runs", self.page(self.runs_page)),
            Route("/feeds/all.atom", self.page(self.feed)),
            Route("/feeds/{name}.atom", self.page(self.feed)),
            Route("/metrics", self.page(self.metrics_page)),
            Route("/healthz", self.page(self.healthz)),
            Route("/static/style.css", self.stylesheet),
        ]
        self.starlette = Starlette(routes=routes)
        self.asgi: ASGIApp = _Guard(self.starlette, token)

    # -- plumbing ----------------------------------------------------------------------------

    def page(
        self, render: Callable[[Request], Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint that renders in a worker thread and answers 503 when the database
        does not."""

        async def endpoint(request: Request) -> Response:
            try:
                return await asyncio.to_thread(render, request)
            except DATABASE_ERRORS as exc:
                logger.warning("Web view: the database did not answer: %s", describe_error(exc))
                return PlainTextResponse(
                    f"The database did not answer: {describe_error(exc)}\n", status_code=503
                )

        return endpoint

    def html(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        state = self.state()
        body = self.templates.get_template(template).render(
            daemon=state, version=self.version, now=datetime.now(UTC), **context
        )
        return HTMLResponse(body, status_code=status_code)

    def not_found(self, what: str) -> HTMLResponse:
        return self.html("not_found.html", 404, what=what, title="Not found")

    async def stylesheet(self, request: Request) -> Response:
        return Response(
            self.css,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    # -- pages -------------------------------------------------------------------------------

    def topics_page(self, request: Request) -> Response:
        rows = []
        state = self.state()
        for overview in topics_overview(self.sessions):
            status = overview.status
            last = status.last_run
            reason = None
            if status.health.state == "broken":
                reason = status.health.reason
            elif last is not None and last.status in FAILED_RUN_STATUSES:
                reason = last.message or (
                    last.failures[0].get("reason") if last.failures else f"run {last.status}"
                )
            rows.append(
                {
                    "status": status,
                    "last": last,
                    "reason": reason,
                    "articles": overview.articles,
                    "next_run": state.next_runs.get(status.name),
                }
            )
        return self.html("topics.html", rows=rows, title="Topics")

    def _kinds(self, request: Request) -> list[str]:
        kinds = [k for k in request.query_params.getlist("kind") if k]
        return [k for k in kinds if k in CHANGE_KINDS]

    def _older(self, request: Request) -> int | None:
        value = request.query_params.get("older", "")
        return int(value) if value.isdigit() else None

    def changes_page(self, request: Request) -> Response:
        kinds = self._kinds(request)
        page = recent_changes(self.sessions, kinds=kinds, older_than=self._older(request))
        return self.html(
            "changes.html", page=page, kinds_shown=kinds, topic=None, title="Recent changes"
        )

    def topic_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        found = topic_id(self.sessions, name)
        if found is None:
            return self.not_found(f"No topic called {name!r} is in the database.")
        kinds = self._kinds(request)
        page = recent_changes(
            self.sessions, topic=found, kinds=kinds, older_than=self._older(request)
        )
        runs = recent_runs(self.sessions, topic=found, limit=RUNS_ON_TOPIC_PAGE)
        return self.html(
            "changes.html",
            page=page,
            kinds_shown=kinds,
            topic=name,
            runs=runs.items,
            title=f"Topic {name}",
        )

    def runs_page(self, request: Request) -> Response:
        name = request.query_params.get("topic") or None
        found = None
        if name is not None:
            found = topic_id(self.sessions, name)
            if found is None:
                return self.not_found(f"No topic called {name!r} is in the database.")
        page = recent_runs(self.sessions, topic=found, older_than=self._older(request))
        return self.html(
            "runs.html",
            page=page,
            topic=name,
            failed=FAILED_RUN_STATUSES,
            title="Runs" if name is None else f"Runs of {name}",
        )

    def article_page(self, request: Request) -> Response:
        params = request.query_params
        old = params.get("from", "")
        new = params.get("to", "")
        view = params.get("view", "both")
        if view not in ("both", "inline", "side"):
            view = "both"
        try:
            article = article_view(
                self.sessions,
                request.path_params["article"],
                old=int(old) if old.isdigit() else None,
                new=int(new) if new.isdigit() else None,
            )
        except UnknownArticleId as exc:
            return self.not_found(str(exc))
        title = article.new.title if article.new is not None else article.url
        return self.html(
            "article.html",
            article=article,
            diffs=_field_diffs(article),
            view=view,
            title=one_line(title) or "(no title)",
        )

    def feed(self, request: Request) -> Response:
        name = request.path_params.get("name")
        if name is not None and topic_id(self.sessions, name) is None:
            return self.not_found(f"No topic called {name!r} is in the database.")
        return Response(build_feed(self.sessions, name), media_type="application/atom+xml")

    def metrics_page(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    def healthz(self, request: Request) -> Response:
        state = self.state()
        checks = {"database": "ok", "scheduler": "running" if state.running else "not running"}
        healthy = True
        try:
            ping(self.sessions)
        except DATABASE_ERRORS as exc:
            checks["database"] = describe_error(exc)
            healthy = False
        if state.in_process and not state.running:
            healthy = False
        checks["status"] = "ok" if healthy else "failing"
        return Response(
            json.dumps(checks, sort_keys=True) + "\n",
            status_code=200 if healthy else 503,
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


@dataclass(frozen=True)
class FieldDiff:
    """One changed field between two versions, ready to show."""

    name: str
    inline: Markup
    old: Markup
    new: Markup


def _field_diffs(article: ArticleView) -> list[FieldDiff]:
    """The changed fields between the article's two chosen versions: title, lead and body as
    word diffs, authors and the stated dates as old and new text."""
    old, new = article.old, article.new
    if old is None or new is None or old.version == new.version:
        return []
    # A version whose text the retention policy removed has no lead or body to compare: the
    # page says so (pruned_versions) instead of showing the text as deleted or added.
    text_gone = old.text_pruned_at is not None or new.text_pruned_at is not None
    texts = {
        "title": (one_line(old.title), one_line(new.title)),
        "lead": (old.lead, new.lead),
        "body": (old.body, new.body),
        "authors": (", ".join(old.authors), ", ".join(new.authors)),
        "published": (old.published or "", new.published or ""),
        "modified": (old.modified or "", new.modified or ""),
    }
    out = []
    for name in (*DIFFED_FIELDS, "authors", "published", "modified"):
        if text_gone and name in ("lead", "body"):
            continue
        before, after = texts[name]
        ops = word_diff(before, after)
        if not has_changes(ops):
            continue
        out.append(
            FieldDiff(
                name=name,
                inline=Markup(diff_html(ops)),  # noqa: S704 - alerts.diff escapes all text
                old=Markup(side_html(ops, "old")),  # noqa: S704
                new=Markup(side_html(ops, "new")),  # noqa: S704
            )
        )
    return out
