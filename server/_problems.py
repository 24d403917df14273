"""RFC 9457 problem details for every error, each with a stable machine-readable ``code``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from protocol import FieldProblem, Problem

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(StarletteHTTPException):
    """An error the API answers with; ``code`` is the stable name clients switch on.

    An HTTP exception, so it passes unchanged through FastAPI's body parsing (which turns any
    other exception into a generic 400).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(status, detail, headers or {})
        self.status = status
        self.code = code
        self.detail = detail  # type: ignore[assignment]  # None: no detail to give
        self.headers: dict[str, str] = headers or {}
        self.errors = errors

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail or ''}".rstrip(": ")


def problem_response(
    status: int,
    code: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[FieldProblem] | None = None,
) -> JSONResponse:
    problem = Problem(
        title=_TITLES.get(status, "Error"),
        status=status,
        code=code,
        detail=detail,
        instance=instance,
        errors=errors,
    )
    return JSONResponse(
        problem.to_json(), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


def field_problems(exc: ValidationError | RequestValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(
            loc=[p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
            msg=str(error.get("msg", "invalid")),
            type=error.get("type"),
        )
        for error in exc.errors()
    ]


def invalid_fields(problems: list[FieldProblem]) -> str:
    """The detail of a 422: the fields and what is wrong with each, readable on its own."""
    shown = "; ".join(f"{'.'.join(str(p) for p in f.loc)}: {f.msg}" for f in problems[:5])
    more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"{len(problems)} invalid field(s): {shown}{more}"


def validation_error(exc: ValidationError, prefix: str = "body") -> ApiError:
    problems = [
        FieldProblem(loc=[prefix, *p.loc], msg=p.msg, type=p.type) for p in field_problems(exc)
    ]
    return ApiError(422, "validation_failed", invalid_fields(problems), errors=problems)


def handled_problem(exc: Exception, path: str) -> JSONResponse | None:
    """The problem+json an exception is answered with, or None for one that is a bug (a
    500, logged by ``server._front``). The app's exception handlers and the lean routes
    (``server._lean``) both answer through it."""
    if isinstance(exc, ClientDisconnect):
        # The client left mid-body (or was cut off by the body timeout): nobody reads this
        # answer, and it is not a server error.
        return problem_response(400, "client_disconnected", instance=path)
    if isinstance(exc, ApiError):
        return problem_response(
            exc.status, exc.code, exc.detail, instance=path, headers=exc.headers, errors=exc.errors
        )
    if isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers or {})
        return problem_response(
            status, _CODES.get(status, "error"), detail, instance=path, headers=headers
        )
    if isinstance(exc, RequestValidationError):
        problems = field_problems(exc)
        return problem_response(
            422, "validation_failed", invalid_fields(problems), instance=path, errors=problems
        )
    return None


def install_problem_handlers(app: FastAPI) -> None:
    async def on_handled(request: Request, exc: Exception) -> JSONResponse:
        response = handled_problem(exc, request.url.path)
        assert response is not None
        return response

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after answering; server._front logs it once and counts the 500.
        return problem_response(500, "internal_error", instance=request.url.path)

    for handled in (ClientDisconnect, ApiError, StarletteHTTPException, RequestValidationError):
        app.add_exception_handler(handled, on_handled)
    app.add_exception_handler(Exception, on_unexpected)


def problem_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route can answer."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        for status in statuses
    }
