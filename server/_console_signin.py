"""Signing in and out of the console."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from server._console_session import (
    COOKIE,
    SESSION_TTL_S,
    check_same_site,
    client_address,
    close_session,
    is_https,
    open_session,
)
from server._console_web import enter, environment, read_form
from server._security import hash_token, same_hash
from server._state import get_state

router = APIRouter(include_in_schema=False)


def _safe_next(target: str) -> str:
    """Only a path on this site: never an absolute URL an attacker could send users to."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/devices"


def _signin_page(
    request: Request, *, error: str | None, until: float | None, status: int
) -> HTMLResponse:
    html = environment.get_template("signin.html").render(
        request=request,
        path="/signin",
        title="Sign in",
        csrf="",
        flash=None,
        error=error,
        until=until,
        next=_safe_next(request.query_params.get("next", "/devices")),
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse("/devices", status_code=303)


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    return _signin_page(request, error=None, until=None, status=200)


@router.post("/signin")
async def signin(request: Request) -> Response:
    check_same_site(request)
    state = get_state(request)
    form = await read_form(request)
    limit = state.signin_failures
    key = client_address(request)
    token = form.get("token")
    right = bool(token) and same_hash(state.admin_token_hash, hash_token(token or ""))
    # A wrong token is counted and checked in one step (any replica); a right one is checked.
    wait = await (limit.retry_after(key) if right else limit.hit(key))
    if wait:
        until = state.clock() + wait
        text = dt.datetime.fromtimestamp(until, dt.UTC).strftime("%H:%M UTC")
        page = _signin_page(
            request,
            error=f"Too many wrong tokens from this address. Try again at {text}.",
            until=until,
            status=429,
        )
        page.headers["Retry-After"] = str(wait)
        return page
    if not right:
        return _signin_page(
            request,
            error="That is not this server's admin token.",
            until=None,
            status=401,
        )
    await limit.reset(key)
    secret = await open_session(state)
    response = RedirectResponse(_safe_next(form.get("next", "/devices")), status_code=303)
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int(SESSION_TTL_S),
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    console = await enter(request)
    await close_session(console.state, console.session)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
