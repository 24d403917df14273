"""Mounting the console on the reference server: its routes, static files and error pages."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from server import (
    _console_devices,
    _console_interrupts,
    _console_layouts,
    _console_media,
    _console_playlists,
    _console_reports,
    _console_schedule,
    _console_signin,
)
from server._console_session import CrossSiteRefused, SignInRequired
from server._console_web import STATIC, SecurityHeaders, environment
from server._problems import problem_response


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and request.method == "GET"


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    if _wants_html(request):
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse("/signin?next=" + quote(target, safe=""), status_code=303)
    return problem_response(401, "signin_required", "sign in to the console first")


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CrossSiteRefused)
    if "text/html" in request.headers.get("accept", ""):
        html = environment.get_template("error.html").render(
            title="Refused",
            heading="Request refused",
            message=f"{exc.reason}. Nothing was changed.",
            path=request.url.path,
            csrf="",
            flash=None,
        )
        return HTMLResponse(html, status_code=403)
    return problem_response(403, "cross_site_refused", exc.reason)


def install_console(app: FastAPI) -> None:
    """Serve the web console at ``/`` (pages) and ``/static`` (CSS and scripts)."""
    for module in (
        _console_signin,
        _console_devices,
        _console_interrupts,
        _console_media,
        _console_playlists,
        _console_layouts,
        _console_schedule,
        _console_reports,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(CrossSiteRefused, _refused)
    app.add_middleware(SecurityHeaders)
