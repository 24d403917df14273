"""Credentials and the last good manifest on disk: atomic, private, tolerant of damage."""

from __future__ import annotations

import stat
from pathlib import Path

from core import redact
from sync import Credentials, CredentialStore, ManifestStore
from tests.sync.device_fakes import manifest

TOKEN = "tok_0123456789abcdefghij"


def credentials() -> Credentials:
    return Credentials(server_url="http://s.test", device_id="d1", device_token=TOKEN)


def test_credentials_round_trip_with_mode_0600(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    assert store.load() is None
    store.save(credentials())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.load() == credentials()
    assert not list(tmp_path.glob(".*.tmp")), "no temp file left behind"


def test_credentials_token_is_a_registered_secret_and_hidden_from_repr(tmp_path: Path) -> None:
    CredentialStore(tmp_path).save(credentials())
    assert TOKEN not in repr(credentials())
    assert redact(f"token is {TOKEN}") == "token is ***"


def test_wipe_forgets_the_credentials(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.save(credentials())
    store.wipe()
    assert store.load() is None
    store.wipe()  # idempotent


def test_damaged_credentials_mean_pairing_again(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.path.write_text('{"server_url": "http://s.test", "device_id": ')
    assert store.load() is None


def test_last_good_manifest_round_trip(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    assert store.load() is None
    store.save(manifest(7), '"e7"')
    stored = store.load()
    assert stored is not None
    assert stored.manifest == manifest(7)
    assert stored.etag == '"e7"'


def test_damaged_manifest_file_is_ignored(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    store.path.write_text('{"etag": "x", "manifest": {"version": -1}}')
    assert store.load() is None
