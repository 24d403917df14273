"""Layout geometry, zone renderers and the compositor."""

__all__: list[str] = []
