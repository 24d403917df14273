"""The bundled reference server."""

__all__: list[str] = []
