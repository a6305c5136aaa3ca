"""The dashboard's Starlette application: routes, login, pages.

Every page but /login needs a session (see `auth`); without one the browser is sent to
/login and comes back after. Database work runs on one thread of its own (the store's
connections are not thread-safe), off the event loop; templates are Jinja2 with autoescaping
on for everything, so a hostname or a reason can never become markup.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from devposture.collector.admin import audit_words
from devposture.collector.clock import utcnow
from devposture.collector.company_time import shown, zone_of
from devposture.collector.compliance import STATES
from devposture.collector.config import CollectorConfig
from devposture.collector.credentials import CredentialFormatError, parse_credential
from devposture.collector.device_history import OS_NAMES
from devposture.collector.store import database_errors
from devposture.collector.store.admin import CredentialInfo
from devposture.collector.store.guesses import DASHBOARD, GuessLedger
from devposture.collector.throttle import FREE_FAILURES, WINDOW_SECONDS, Busy, FailureThrottle
from devposture.collector.web import auth, charts, downloads, i18n, records
from devposture.collector.web.reasons import reason_text
from devposture.collector.web.views import (
    COMPLIANT,
    NOT_PASSING,
    FailingFilters,
    Filters,
    PolicyUnavailable,
    Trend,
    Views,
    trend_days,
)
from devposture.policy import Policy
from devposture.policy.catalogs import Lang, closed_up
from devposture.policy.reasons import visible_controls

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 8192
LANG_COOKIE_SECONDS = 365 * 86400
# A page that met the database failing asks the browser to come back after this long.
RETRY_AFTER_SECONDS = 5
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
     b" frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Not "no-referrer": with it, browsers send "Origin: null" on our own form posts.
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip

HSTS = (b"strict-transport-security", b"max-age=31536000")

T = TypeVar("T")
Handler = Callable[[Request, "auth.Session", str], Awaitable[Response]]


class SecurityHeaders:
    """Adds the headers above to every response (pages, redirects, static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Over TLS, browsers are told to come back only over TLS (a year; set only then: a
        # dashboard served on plain HTTP must not lock itself out).
        extra = [HSTS] if scope.get("scheme") == "https" else []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS, *extra]
            await send(message)

        await self.app(scope, receive, sending)


@jinja2.pass_context
def _when(context: jinja2.runtime.Context, moment: dt.datetime | str | None) -> str:
    """A time as every page shows it: in the company's time zone, with its offset (the page's
    `zone`, from the policy its view was made with), in the brackets of the page's language
    ("截至 2026-12-05 09:00（UTC+08:00）")."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    zone, lang = context.get("zone"), context.get("lang")
    return shown(moment, zone if isinstance(zone, dt.tzinfo) else zone_of(None)).worded(
        "en" if lang == "en" else "zh"
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    env.filters["when"] = _when
    env.filters["os_name"] = _os_name
    env.globals["filled"] = _filled
    return env


def _filled(template: str, **values: object) -> str:
    """A page's sentence with its values (`filled(t.left_notice, when=…)`), as the command
    line's and the reasons' are: without the translator's space after a value that now ends in
    a full-width mark ("于 2026-12-03 03:31（UTC+08:00）被设为", `catalogs.closed_up`)."""
    texts = {name: str(value) for name, value in values.items()}
    return closed_up(template, texts).format_map(texts)


def _os_name(family: object) -> object:
    """An OS family as its maker writes it (`OS_NAMES`), in a cell and in the filter's choices
    alike: "—" for a device that never said (as every empty cell), a later version's family as
    it is."""
    return OS_NAMES.get(str(family), family) if family else "—"


def _shown(value: object) -> object:
    """Every value a page prints: a text's direction controls written out (a hostname or a
    Wi-Fi name with U+202E turned what follows it around); the page's own markup as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible_controls(value)
    return value


class _FailedLogins:
    """The dashboard's failed logins as the throttle counts them, in the database (the
    writer the sessions use); called on the dashboard's database thread."""

    def __init__(self, board: Dashboard) -> None:
        self._board = board

    def _ledger(self) -> GuessLedger:
        writer = self._board.views_now().writer()
        return GuessLedger(writer.guesses, DASHBOARD, WINDOW_SECONDS)

    def recent(self, source: str, now: float) -> list[float]:
        return self._ledger().recent(source, now)

    def add(self, source: str, now: float) -> list[float]:
        return self._ledger().add(source, now)


class Dashboard:
    """One dashboard: its sessions, its database thread and its templates."""

    def __init__(self, config: CollectorConfig, *, secure_cookies: bool = False) -> None:
        self.config = config
        self.secure_cookies = secure_cookies
        self.env = _environment()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devposture-web-db")
        # Logins per client address: one at a time, slowed after a few failures (throttle.py),
        # the failures counted in the database, alike on every collector (store/guesses.py).
        self.throttle = FailureThrottle(
            clock=time.time, run=self._in_db, ledger=_FailedLogins(self),
        )  # fmt: skip
        self._views: Views | None = None

    def prepare(self) -> None:
        """Compile the templates and open the database connections now, at start, so that
        the first page asked for after a start waits for its counts alone (connecting and
        compiling took 0.1-0.2 s of the first page over PostgreSQL)."""
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)
        self._db.submit(lambda: self.views_now().prepare()).result()

    def close(self) -> None:
        def closing() -> None:
            if self._views is not None:
                self._views.close()

        self._db.submit(closing).result()
        self._db.shutdown(wait=True)

    async def _in_db(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, work)

    async def db(self, work: Callable[[Views], T]) -> T:
        """Run `work` with the views on the database thread."""

        def call() -> T:
            return work(self.views_now())

        return await asyncio.get_running_loop().run_in_executor(self._db, call)

    def views_now(self) -> Views:
        """The views, opened on first use (on the database thread)."""
        if self._views is None:
            self._views = Views(self.config)
        return self._views

    # --- rendering -----------------------------------------------------------------------

    def render(
        self, request: Request, name: str, lang: str, status: int = 200,
        session: auth.Session | None = None, **context: object,
    ) -> HTMLResponse:  # fmt: skip
        words = i18n.words(lang)
        params = dict(request.query_params)

        def switch(to: str) -> str:
            return f"{request.url.path}?{urlencode(params | {'lang': to})}"

        def page_link(number: int) -> str:
            return f"{request.url.path}?{urlencode(params | {'page': str(number)})}"

        def download_link(table: str, fmt: str, **more: str) -> str:
            """A table's download, with this page's filters (not its page or language)."""
            kept = {k: v for k, v in params.items() if k not in ("page", "lang")}
            return f"/download/{table}?{urlencode(kept | more | {'format': fmt})}"

        def sort_link(toggled: dict[str, str]) -> str:
            """The same listing sorted by a column (from its first page)."""
            kept = {k: v for k, v in params.items() if k != "page"}
            return f"{request.url.path}?{urlencode(kept | toggled)}"

        def title(item: object, kind: str = "title") -> str:
            text = str(getattr(item, f"{kind}_{lang}"))
            # A clause's English title starts with its id, which the pages show beside it.
            clause_id = str(getattr(item, "clause_id", ""))
            return text.removeprefix(f"{clause_id} ") if clause_id else text

        def row_title(row: dict[str, object], kind: str) -> str:
            text = str(row.get(f"{kind}_{lang}") or "")
            clause = str(row.get("clause") or "")
            # The page shows the clause id beside it; the English title starts with it too.
            if kind == "clause_title" and clause and text.startswith(clause + " "):
                text = text[len(clause) + 1 :]
            return text

        # The zone of the policy the page's view was judged with (pages without one show no
        # time): read on the database thread with the view, never here on the event loop.
        policy = context.get("policy", getattr(context.get("view"), "policy", None))
        zone = zone_of(policy if isinstance(policy, Policy) else None)

        def reason(stored: str | None) -> str:
            """A stored reason in the page's language and the company's time zone."""
            return reason_text(stored or "", lang, zone)

        html = self.env.get_template(name).render(
            zone=zone, lang=lang, t=words, session=session, path=request.url.path,
            lang_zh=switch("zh"), lang_en=switch("en"), page_link=page_link, title=title,
            download_link=download_link, sort_link=sort_link, reason=reason,
            may_read_audit=session is not None and auth.may_read_audit(session.role),
            compliant_state=COMPLIANT,
            row_title=row_title, states=STATES, **context,
        )  # fmt: skip
        response = HTMLResponse(html, status_code=status)
        if request.query_params.get("lang") in i18n.LANGS:
            response.set_cookie(
                auth.LANG_COOKIE, lang, max_age=LANG_COOKIE_SECONDS, httponly=True,
                samesite="strict", secure=self.secure_cookies,
            )  # fmt: skip
        return response

    def lang(self, request: Request, session: auth.Session | None = None) -> str:
        chosen = i18n.pick_lang(
            request.query_params.get("lang"),
            request.cookies.get(auth.LANG_COOKIE) or (session.lang if session else None),
            request.headers.get("accept-language"),
            self.config.web_language,
        )
        if session is not None and session.lang != chosen:
            session.lang = chosen
            self._remember(session)
        return chosen

    def _remember(self, session: auth.Session) -> None:
        """Keep a session's new language (rendering is synchronous: written on the database
        thread, not awaited)."""
        self._db.submit(lambda: self.views_now().sessions.remember(session))

    # --- sessions ------------------------------------------------------------------------

    async def database_failed(self, request: Request, exc: Exception) -> Response:
        """Any page or download whose database read failed (a PostgreSQL restart or
        failover, a disk error): 503 with a page that says so and a hint to come back, one
        log line, no traceback (collector/outage.py answers the gRPC ports alike)."""
        log.error("dashboard: %s: the database failed (%s): answered 503", request.url.path,
                  type(exc).__name__)  # fmt: skip
        response = self.render(request, "error.html", self.lang(request), 503,
                               message="database_error")  # fmt: skip
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    async def session(self, request: Request) -> auth.Session | None:
        """The request's live session, if its credential is still valid."""
        cookie = request.cookies.get(auth.COOKIE)

        def live(v: Views) -> auth.Session | None:
            session = v.sessions.get(cookie)
            if session is None:
                return None
            if not v.credential_active(session.credential_id):
                log.info("dashboard: credential %s was revoked; its sessions end",
                         session.credential_id)  # fmt: skip
                v.sessions.end_credential(session.credential_id)
                return None
            return session

        return await self.db(live)

    async def audit(
        self, request: Request, command: str, outcome: str, message: str, *,
        name: str = "", credential_id: str | None = None, role: str = "",
    ) -> None:  # fmt: skip
        peer = f"web:{request.client.host}:{request.client.port}" if request.client else "web"
        await self.db(lambda v: v.writer().admin.audit(
            utcnow(), actor=name or "unauthenticated", credential_id=credential_id, role=role,
            command=command, arguments={}, outcome=outcome, message=message, peer=peer,
        ))  # fmt: skip


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def _same_origin(request: Request) -> bool:
    """A POST from this site's own pages (Origin and Fetch Metadata, when the browser sends
    them; SameSite=Strict already keeps the session cookie off cross-site requests)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


# The dashboard's forms have a few fields each; a body with more is no form of its.
MAX_FORM_FIELDS = 20


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form (None when it is too large or not a form)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more fields than any form of the dashboard has: not one of its forms
        return None
    return {key: values[0] for key, values in fields.items() if values}


class Pages:
    """The endpoints, over one `Dashboard`."""

    def __init__(self, board: Dashboard) -> None:
        self.board = board

    async def login_page(self, request: Request) -> Response:
        board = self.board
        target = auth.safe_next(request.query_params.get("next"))
        if await board.session(request) is not None:
            return RedirectResponse(target, status_code=303)
        return board.render(request, "login.html", board.lang(request), error="", next=target)

    async def _check(self, presented: str) -> tuple[CredentialInfo | None, str | None, str]:
        """The credential's record if it may view the dashboard; its id; why not."""
        try:
            credential = parse_credential(presented)
        except CredentialFormatError:
            return None, None, audit_words.not_a_credential()
        info = await self.board.db(lambda v: v.store.admin.authenticate(credential))
        if info is None:
            return None, credential.credential_id, audit_words.unknown_credential(
                credential.credential_id
            )
        if not auth.may_view(info.role):
            return None, info.credential_id, audit_words.may_not_view(info.role)
        return info, info.credential_id, ""

    async def login(self, request: Request) -> Response:
        board = self.board
        lang = board.lang(request)
        if not _same_origin(request):
            return board.render(request, "error.html", lang, 403, message="forbidden")
        form = await _form(request) or {}
        target = auth.safe_next(form.get("next"))
        # The TCP peer itself: proxy headers are off (server.py), so no header can change it.
        address = request.client.host if request.client else "unknown"
        try:
            async with board.throttle.attempt(address):
                return await self._login(request, lang, form, target, address)
        except Busy as busy:
            if busy.first:
                log.warning("dashboard: too many logins at once from %s: turning some away",
                            address)  # fmt: skip
            seconds = math.ceil(busy.retry_after)
            response = board.render(request, "login.html", lang, 429, error="login_busy",
                                    retry_after=seconds, next=target)  # fmt: skip
            response.headers["retry-after"] = str(seconds)
            return response

    async def _login(
        self, request: Request, lang: str, form: dict[str, str], target: str, address: str
    ) -> Response:
        """One login attempt, holding its address's turn (see `login`)."""
        board = self.board
        info, credential_id, reason = await self._check(form.pop("credential", ""))
        if info is None:
            failures = await board.throttle.record_failure(address)
            log.warning("dashboard login refused: %s", reason)
            if failures >= FREE_FAILURES:
                log.warning(
                    "%d failed dashboard logins from %s within %d minutes: slowing it down",
                    failures, address, int(WINDOW_SECONDS // 60),
                )  # fmt: skip
            await board.audit(request, "dashboard login", "denied", reason,
                              credential_id=credential_id)  # fmt: skip
            return board.render(request, "login.html", lang, 401, error="login_failed",
                                next=target)  # fmt: skip
        session = await board.db(
            lambda v: v.sessions.create(info.credential_id, info.name, info.role, lang)
        )
        presented = request.cookies.get(auth.COOKIE)
        if presented:  # a login in a browser already signed in replaces that session

            def end_replaced(v: Views) -> None:
                replaced = v.sessions.get(presented)
                if replaced is not None:
                    v.sessions.end(replaced.session_id)

            await board.db(end_replaced)
        log.info("dashboard login: %s (credential %s, %s)", info.name, info.credential_id,
                 info.role)  # fmt: skip
        await board.audit(request, "dashboard login", "ok", audit_words.SIGNED_IN,
                          name=info.name, credential_id=info.credential_id,
                          role=info.role)  # fmt: skip
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            auth.COOKIE, session.session_id, httponly=True, samesite="strict",
            secure=board.secure_cookies, path="/",
        )  # fmt: skip
        return response

    async def logout(self, request: Request) -> Response:
        board = self.board
        cookie = request.cookies.get(auth.COOKIE)
        session = await board.db(lambda v: v.sessions.get(cookie))
        form = await _form(request) or {}
        if session is None or not _same_origin(request):
            return RedirectResponse("/login", status_code=303)
        if not auth.csrf_matches(session, form.get("csrf")):
            return board.render(request, "error.html", board.lang(request, session), 403,
                                session=session, message="forbidden")  # fmt: skip
        ended = session.session_id
        await board.db(lambda v: v.sessions.end(ended))
        await board.audit(request, "dashboard logout", "ok", audit_words.SIGNED_OUT,
                          name=session.name,
                          credential_id=session.credential_id, role=session.role)  # fmt: skip
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="strict",
                               secure=board.secure_cookies)  # fmt: skip
        return response

    async def no_such_page(self, request: Request, exc: Exception) -> Response:
        """A path the dashboard has no page for (404: a mistyped or stale link, a missing
        static file) or a method it does not take there (405: /logout opened as a link): the
        dashboard's own page in the reader's language, with the menu when signed in, where
        Starlette answered "Not Found" or "Method Not Allowed" in plain English text."""
        board = self.board
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        try:
            session = await board.session(request)
        except database_errors():  # the page says only what is missing: no session then
            session = None
        response = board.render(
            request, "error.html", board.lang(request, session), status, session=session,
            message="not_found" if status == 404 else "forbidden",
        )  # fmt: skip
        if isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)  # 405's Allow
        return response

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint that needs a session; without one, the browser goes to /login."""
        board = self.board

        async def endpoint(request: Request) -> Response:
            session = await board.session(request)
            if session is None:
                return _to_login(request)
            lang = board.lang(request, session)
            try:
                return await handler(request, session, lang)
            except PolicyUnavailable as exc:
                log.error("dashboard: the policy cannot be read: %s", exc)
                return board.render(request, "error.html", lang, 503, session=session,
                                    message="policy_error")  # fmt: skip

        return endpoint

    async def overview(self, request: Request, session: auth.Session, lang: str) -> Response:
        group = request.query_params.get("group", "").strip()[:64]
        view = await self.board.db(lambda v: v.overview(group))
        series = _labelled(view.trend, view.policy, lang)
        weeks = [f"{day:%m-%d}" for day in trend_days(view.trend.moments, zone_of(view.policy))]
        # The SVGs are built by charts.py, which escapes every text it places.
        words = i18n.words(lang)
        svg = charts.trend_svg(weeks, series, words.trend, f"{words.week_ending} {{label}}",
                               colon=words.colon)
        trend = Markup(svg)  # noqa: S704
        swatches = [Markup(charts.swatch(n)) for n in range(len(series))]  # noqa: S704
        return self.board.render(request, "overview.html", lang, session=session, view=view,
                                 trend=trend, series=series, weeks=weeks,
                                 swatches=swatches)  # fmt: skip

    async def devices(self, request: Request, session: auth.Session, lang: str) -> Response:
        filters = Filters.of_query(request.query_params, _page_number(request))
        view = await self.board.db(lambda v: v.device_list(filters))
        return self.board.render(request, "devices.html", lang, session=session, view=view,
                                 not_passing=NOT_PASSING)  # fmt: skip

    async def device(self, request: Request, session: auth.Session, lang: str) -> Response:
        device_id = str(request.path_params["device_id"])
        view = await self.board.db(lambda v: v.device(device_id))
        if view is None:
            return self.board.render(request, "error.html", lang, 404, session=session,
                                     message="device_not_found")  # fmt: skip
        return self.board.render(request, "device.html", lang, session=session, view=view)

    async def failing(self, request: Request, session: auth.Session, lang: str) -> Response:
        filters = FailingFilters.of_query(request.query_params, _page_number(request))
        view = await self.board.db(lambda v: v.failing(filters))
        return self.board.render(request, "failing.html", lang, session=session, view=view,
                                 at=view.at, policy=view.policy, rows=view.rows)  # fmt: skip

    async def waivers(self, request: Request, session: auth.Session, lang: str) -> Response:
        view = await self.board.db(records.waivers)
        return self.board.render(request, "waivers.html", lang, session=session, view=view)

    async def tokens(self, request: Request, session: auth.Session, lang: str) -> Response:
        view = await self.board.db(records.tokens)
        return self.board.render(request, "tokens.html", lang, session=session, view=view)

    async def audit_log(self, request: Request, session: auth.Session, lang: str) -> Response:
        """The audit log: for the auditor and admin roles only, as the admin port's `audit
        log` (`auth.may_read_audit`)."""
        if not auth.may_read_audit(session.role):
            return self.board.render(request, "error.html", lang, 403, session=session,
                                     message="audit_forbidden")  # fmt: skip
        number = _page_number(request)
        view = await self.board.db(lambda v: records.audit_log(v, number))
        reader: Lang = "en" if lang == "en" else "zh"

        def message(stored: str) -> str:
            """An entry's explanation in the page's language (the download keeps it)."""
            return audit_words.message_in(stored, reader)

        return self.board.render(request, "audit.html", lang, session=session, view=view,
                                 message=message)  # fmt: skip

    async def download(self, request: Request, session: auth.Session, lang: str) -> Response:
        """A table as CSV, XLSX or JSON (`downloads`), made on the database thread."""
        asked = downloads.wanted(request)
        if asked is None:
            return self.board.render(request, "error.html", lang, 404, session=session,
                                     message="not_found")  # fmt: skip
        table, fmt = asked
        if table in downloads.AUDITOR_TABLES and not auth.may_read_audit(session.role):
            return self.board.render(request, "error.html", lang, 403, session=session,
                                     message="audit_forbidden")  # fmt: skip
        query = dict(request.query_params)

        def make(v: Views) -> Response:
            words: Lang = "en" if lang == "en" else "zh"
            columns, rows = downloads.table_of(v, table, query, words) or ((), [])
            return downloads.response(table, fmt, columns, rows, zone_of(v.policy()))

        return await self.board.db(make)


def _labelled(trend: Trend, policy: Policy, lang: str) -> list[charts.Series]:
    """The trend's lines labelled as a person reads them: the clause and the check's title in
    the page's language (never a bare check id)."""
    out = []
    for line in trend.series:
        spec = policy.check(line.name)
        label = (f"{spec.clause} {getattr(spec, f'title_{lang}')}" if spec is not None
                 else line.name)  # fmt: skip
        out.append(charts.Series(line.name, line.values, label))
    return out


def _page_number(request: Request) -> int:
    """The page asked for (`?page=`); the first for anything but a number."""
    try:
        return int(request.query_params.get("page", "1"))
    except ValueError:
        return 1


def create_app(config: CollectorConfig, *, secure_cookies: bool = False) -> Starlette:
    """The dashboard for the collector in `config`'s data folder."""
    board = Dashboard(config, secure_cookies=secure_cookies)
    pages = Pages(board)
    routes = [
        Route("/login", pages.login_page, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/", pages.page(pages.overview), methods=["GET"]),
        Route("/devices", pages.page(pages.devices), methods=["GET"]),
        Route("/devices/{device_id}", pages.page(pages.device), methods=["GET"]),
        Route("/failing", pages.page(pages.failing), methods=["GET"]),
        Route("/waivers", pages.page(pages.waivers), methods=["GET"]),
        Route("/tokens", pages.page(pages.tokens), methods=["GET"]),
        Route("/audit", pages.page(pages.audit_log), methods=["GET"]),
        Route("/download/{table}", pages.page(pages.download), methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers: dict[int | type[Exception], ExceptionHandler] = {
        404: pages.no_such_page, 405: pages.no_such_page,
        **dict.fromkeys(database_errors(), board.database_failed),
    }  # fmt: skip
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.add_middleware(SecurityHeaders)
    app.state.dashboard = board
    return app


def dashboard_of(app: Starlette) -> Dashboard:
    board = app.state.dashboard
    assert isinstance(board, Dashboard)
    return board


__all__ = ["Dashboard", "create_app", "dashboard_of"]
