"""Secrets: generation, hashing, constant-time checks and the admin token's home."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from core import atomic_write_text, register_secret

ADMIN_TOKEN_FILE = "admin_token"  # noqa: S105 (a file name, not a secret)


def new_token() -> str:
    """32 random bytes, URL-safe (43 characters), never starting with ``-``: a token is typed
    after ``--token`` on the command line, where a leading dash reads as an option."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(expected: str | None, token_hash: str) -> bool:
    return expected is not None and hmac.compare_digest(expected, token_hash)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def pairing_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


def load_admin_token(configured: str | None, data_dir: Path) -> tuple[str, bool]:
    """The admin token and whether it was generated now (the caller prints it once).

    A configured token (``SIGNAGE_ADMIN_TOKEN``) wins; else the one stored in the data dir;
    else a new one is written there with mode 0600.
    """
    if configured:
        register_secret(configured)
        return configured, False
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            register_secret(token)
            return token, False
    token = new_token()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Replicas sharing a data dir may start together: the first token to land in the file
    # wins (a hard link never replaces), and the others take it instead of their own.
    draft = path.with_name(f".{ADMIN_TOKEN_FILE}.{os.getpid()}")
    atomic_write_text(draft, token + "\n", mode=0o600)
    try:
        os.link(draft, path)
    except FileExistsError:
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            register_secret(stored)
            return stored, False
        draft.replace(path)  # an empty file, as before: ours replaces it
    finally:
        draft.unlink(missing_ok=True)
    path.chmod(0o600)
    register_secret(token)
    return token, True
