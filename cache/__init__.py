"""The content-addressed, hash-verified asset store."""

__all__: list[str] = []
