"""Who is signed in to the console: a session cookie, its CSRF token, cross-site refusals.

The admin token is typed once into the sign-in form (a POST body, never a URL) and exchanged
for a random session secret in an HttpOnly, SameSite=Strict cookie (Secure when the request
came over HTTPS, also behind a proxy that uvicorn trusts for ``X-Forwarded-Proto``). Only the
secret's hash is stored, with the admin token's hash of the day: a new admin token signs
every session out. The CSRF token is an HMAC of the secret, so it needs no storage; every
state-changing request must carry it, and must not come from another site (``Origin``,
``Sec-Fetch-Site``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import delete, insert, select

from server._db import console_sessions
from server._limits import SlidingWindow
from server._security import hash_token, new_token, same_hash
from server._state import ServerState, get_state

COOKIE = "signage_session"
SESSION_TTL_S = 12 * 3600.0  # one working day; then sign in again
SIGNIN_MAX_FAILURES = 10
SIGNIN_WINDOW_S = 300.0
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, scripts get a 401."""


class CrossSiteRefused(Exception):
    """A state-changing request without this console's CSRF token, or from another site."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Session:
    id: str  # the hash stored in the database
    csrf: str


def csrf_of(secret: str) -> str:
    return hmac.new(secret.encode(), b"signage-console-csrf", hashlib.sha256).hexdigest()


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def client_address(request: Request) -> str:
    # uvicorn has already replaced the peer by X-Forwarded-For when the proxy is trusted.
    return request.client.host if request.client else "unknown"


def signin_limit(request: Request) -> SlidingWindow:
    """Failed sign-ins per client address, shared by every console request of this app."""
    app_state = request.app.state
    window: SlidingWindow | None = getattr(app_state, "console_signin_failures", None)
    if window is None:
        state = get_state(request)
        window = SlidingWindow(SIGNIN_MAX_FAILURES, SIGNIN_WINDOW_S, state.clock)
        app_state.console_signin_failures = window
    return window


async def open_session(state: ServerState) -> str:
    """A new session; returns the cookie's secret (only its hash is stored)."""
    secret = new_token()
    now = state.clock()
    async with state.writer.begin() as conn:
        await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
        await conn.execute(
            insert(console_sessions).values(
                id=hash_token(secret),
                admin_token_hash=state.admin_token_hash,
                created_at=now,
                expires_at=now + SESSION_TTL_S,
            )
        )
    return secret


async def close_session(state: ServerState, session: Session) -> None:
    async with state.writer.begin() as conn:
        await conn.execute(delete(console_sessions).where(console_sessions.c.id == session.id))


async def session_valid(state: ServerState, session_id: str) -> bool:
    """Whether the session is still signed in: not signed out, not expired, same admin token."""
    async with state.engine.connect() as conn:
        row = (
            await conn.execute(select(console_sessions).where(console_sessions.c.id == session_id))
        ).first()
    return (
        row is not None
        and row.expires_at > state.clock()
        and same_hash(state.admin_token_hash, row.admin_token_hash)
    )


async def current_session(request: Request) -> Session:
    """The caller's session, or ``SignInRequired``."""
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) > 256:
        raise SignInRequired
    session_id = hash_token(secret)
    if not await session_valid(get_state(request), session_id):
        raise SignInRequired
    return Session(id=session_id, csrf=csrf_of(secret))


def check_same_site(request: Request) -> None:
    """Refuse a state-changing request that another site's page made the browser send."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        raise CrossSiteRefused(f"the request came from another site ({fetch_site})")
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin != own:
            raise CrossSiteRefused("the request came from another origin")


def check_csrf(request: Request, session: Session, form_token: str | None) -> None:
    check_same_site(request)
    sent = form_token or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise CrossSiteRefused("the form's security token is missing or stale; reload the page")
