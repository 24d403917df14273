"""The routes as /openapi.json documents them, looked up by path before FastAPI routes a
request: which methods a path has, and whether an operation takes a body.

The layers in front of the routes use it: the front door answers OPTIONS and fixes 405's
``Allow``, the authentication gate leaves what does not exist to the router, and the body
limit refuses a body sent to an operation that takes none.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
SEEN_MAX = 4096
Schema = Callable[[], Mapping[str, Any]]


class Routes:
    def __init__(self, schema: Schema) -> None:
        self._schema = schema
        self._table: list[tuple[re.Pattern[str], dict[str, bool]]] | None = None
        # Looked up three times per request (front, gate, body limit), mostly for the same
        # few device paths: remembered, within a bound (paths carry ids).
        self._seen: OrderedDict[str, dict[str, bool]] = OrderedDict()

    def _operations(self, path: str) -> dict[str, bool]:
        """Method → takes a body, for every operation documented at ``path``."""
        found = self._seen.get(path)
        if found is None:
            found = self._seen[path] = self._match(path)
            if len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
        return found

    def _match(self, path: str) -> dict[str, bool]:
        if self._table is None:
            self._table = [
                (
                    re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))),
                    {
                        method.upper(): "requestBody" in operation
                        for method, operation in operations.items()
                        if method.upper() in ORDER
                    },
                )
                for template, operations in self._schema()["paths"].items()
            ]
        found: dict[str, bool] = {}
        for pattern, operations in self._table:
            if pattern.fullmatch(path):
                found.update(operations)
        return found

    def methods(self, path: str) -> list[str]:
        """Every method served at ``path`` (HEAD with GET), plus OPTIONS; empty when none."""
        methods = set(self._operations(path))
        if not methods:
            return []
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods | {"OPTIONS"}, key=ORDER.index)

    def takes_body(self, method: str, path: str) -> bool | None:
        """Whether the operation takes a request body; None when there is no such operation."""
        operations = self._operations(path)
        if method == "HEAD":
            method = "GET"
        return operations.get(method)
