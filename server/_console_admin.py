"""The admin API's generic content routes (list and delete of playlists, layouts and
schedules are registered per collection in a loop), found by name and called directly."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from server._admin_content import router as content_router
from server._problems import ApiError
from server._state import ServerState

_KIND = {"playlists": "playlist", "layouts": "layout", "schedules": "schedule"}


def _endpoint(name: str) -> Any:
    for route in content_router.routes:
        if isinstance(route, APIRoute) and route.name == name:
            return route.endpoint
    raise LookupError(name)


async def list_content(state: ServerState, collection: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await _endpoint(f"list_{collection}")(
        state, state.admin_token_hash
    )
    return found


async def delete_content(state: ServerState, collection: str, item_id: str) -> ApiError | None:
    try:
        await _endpoint(f"delete_{_KIND[collection]}")(item_id, state, state.admin_token_hash)
    except ApiError as exc:
        return exc
    return None
