"""What every layer shares: errors, configuration, structured logging, atomic files, paths."""

from core._atomic import atomic_write, atomic_write_text, fsync_dir
from core._config import (
    CacheConfig,
    DisplayConfig,
    LoggingConfig,
    PlayerConfig,
    ServerConfig,
    Settings,
    SyncConfig,
    load_settings,
    settings_to_toml,
)
from core._errors import (
    CacheError,
    ConfigError,
    DeviceRevoked,
    DiskFull,
    HashMismatch,
    PairingExpired,
    PlayerError,
    ProtocolError,
    ServerError,
    SignageError,
    SyncError,
    ZoneError,
)
from core._logging import configure_logging, forget_secret, redact, register_secret
from core._paths import default_config_path, state_dir

__all__ = [
    "CacheConfig",
    "CacheError",
    "ConfigError",
    "DeviceRevoked",
    "DiskFull",
    "DisplayConfig",
    "HashMismatch",
    "LoggingConfig",
    "PairingExpired",
    "PlayerConfig",
    "PlayerError",
    "ProtocolError",
    "ServerConfig",
    "ServerError",
    "Settings",
    "SignageError",
    "SyncConfig",
    "SyncError",
    "ZoneError",
    "atomic_write",
    "atomic_write_text",
    "configure_logging",
    "default_config_path",
    "forget_secret",
    "fsync_dir",
    "load_settings",
    "redact",
    "register_secret",
    "settings_to_toml",
    "state_dir",
]
