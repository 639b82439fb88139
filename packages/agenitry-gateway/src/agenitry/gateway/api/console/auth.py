"""Who is at the console: the session cookie, forms that must come from its own pages, and
sign-in attempts limited per address.

A page without a live session sends the browser to the sign-in page. A form posted to the
console counts only when it carries its session's form token and, where the browser says
where it comes from (``Origin``, ``Sec-Fetch-Site``), it comes from the console itself:
a page of another site cannot make a signed-in owner approve anything.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any, Optional
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from agenitry.gateway.api.console.render import see_other
from agenitry.gateway.api.ratelimit import TokenBuckets, client_address
from agenitry.gateway.service.sessions import Session, Sessions

#: The session's cookie (HttpOnly, SameSite=Strict, path /console) and the sign-in form's
#: own token cookie (double submit: the sign-in form has no session yet).
SESSION_COOKIE = "agenitry_console"
SIGN_IN_COOKIE = "agenitry_sign_in"
#: Sign-in attempts per client address: this many at once, then one more every 30 seconds.
SIGN_IN_BURST = 10
SIGN_IN_RATE = 1 / 30
#: The longest console address signing in leads back to (a filtered listing's, say); past it, /console.
MAX_THEN = 2000


class SignInNeeded(Exception):
    """No live session: the browser goes to the sign-in page, and back to ``then`` after."""

    def __init__(self, then: str) -> None:
        super().__init__(then)
        self.then = then


class FormRefused(Exception):
    """A form that did not come from a console page of this session: nothing was done."""


def sessions(request: Request) -> Sessions:
    found: Sessions = request.app.state.console_sessions
    return found


async def current_session(request: Request) -> Session:
    """The signed-in owner, or :class:`SignInNeeded`."""
    session = await run_in_threadpool(sessions(request).find, request.cookies.get(SESSION_COOKIE))
    if session is None:
        then = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(safe_then(then) if request.method == "GET" else "/console")
    return session


ConsoleSession = Annotated[Session, Depends(current_session)]


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from the console's own origin (a browser
    that says nothing passes here; the form token still has to match)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and urlsplit(origin).netloc == request.headers.get("host", "")


async def posted_form(request: Request, session: ConsoleSession) -> FormData:
    """A state-changing form of the signed-in owner, refused unless it came from a console page."""
    form = await request.form()
    token = form.get("csrf_token")
    if not same_origin(request) or not session.accepts(token if isinstance(token, str) else None):
        raise FormRefused()
    return form


Posted = Annotated[FormData, Depends(posted_form)]


def field(form: FormData, name: str) -> Optional[str]:
    """A text field of a form, stripped; None when absent or blank."""
    value = form.get(name)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def new_sign_in_token() -> str:
    """The token a sign-in form carries; :func:`set_sign_in_cookie` sets it as a cookie too."""
    return secrets.token_urlsafe(24)


def set_sign_in_cookie(response: Response, request: Request, token: str) -> None:
    """The sign-in form's post must carry the token of this cookie (a double submit)."""
    response.set_cookie(SIGN_IN_COOKIE, token, **_cookie(request, max_age=3600))


def sign_in_token_matches(request: Request, posted: Optional[str]) -> bool:
    cookie = request.cookies.get(SIGN_IN_COOKIE)
    return bool(cookie and posted) and hmac.compare_digest(str(cookie), str(posted)) and same_origin(request)


def limit_sign_in(request: Request) -> float:
    """Take one sign-in attempt of the client's address: 0.0, else the seconds to wait."""
    buckets: TokenBuckets = request.app.state.console_sign_in_limit
    return buckets.take(client_address(request))


def set_session_cookie(response: Response, request: Request, token: str, session: Session, now: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, **_cookie(request, max_age=max(1, (session.expires_at - now) // 1000)))
    response.delete_cookie(SIGN_IN_COOKIE, path="/console", httponly=True, samesite="strict")


def end_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/console", httponly=True, samesite="strict")


def _cookie(request: Request, *, max_age: int) -> dict[str, Any]:
    """HttpOnly, SameSite=Strict, only under /console; Secure when the console is reached over TLS."""
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    return {"max_age": max_age, "path": "/console", "httponly": True, "samesite": "strict", "secure": secure}


def safe_then(then: Optional[str]) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if (
        then
        and len(then) <= MAX_THEN
        and then.startswith("/console")
        and not then.startswith("//")
        and "\\" not in then
    ):
        return then
    return "/console"


def install(app: FastAPI) -> None:
    """Sessions and sign-in limits on ``app``; a page without a session leads to sign-in."""
    app.state.console_sessions = Sessions(app.state.gateway)
    app.state.console_sign_in_limit = TokenBuckets(SIGN_IN_RATE, SIGN_IN_BURST)

    async def sign_in_needed(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)  # noqa: S101 - registered for this type only
        return see_other(f"/console/login?then={quote(exc.then, safe='/')}")

    app.add_exception_handler(SignInNeeded, sign_in_needed)
