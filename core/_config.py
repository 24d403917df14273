"""Configuration: one model per component, loaded from TOML with environment overrides.

Sources, later ones winning: the models' defaults, the TOML file, ``SIGNAGE_SECTION__KEY``
variables (and the documented aliases such as ``SIGNAGE_ADMIN_TOKEN``). Validation collects
every problem at once, each with its key path, the value given and, for an unknown key, the
closest known one.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from core._errors import ConfigError

ENV_PREFIX = "SIGNAGE_"
# Single-name variables the docs promise, mapped to their key path.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "SIGNAGE_ADMIN_TOKEN": ("server", "admin_token"),
    "SIGNAGE_SERVER_URL": ("sync", "server_url"),
    "SIGNAGE_LOG_LEVEL": ("logging", "level"),
}
MASK = "********"

Seconds = Annotated[float, Field(gt=0, le=86_400)]
Port = Annotated[int, Field(ge=1, le=65_535)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class PlayerConfig(_Section):
    preload_ms: int = Field(2000, ge=0, le=60_000, description="prepare the next item this early")
    preroll_min_ms: int = Field(
        500, ge=0, le=600_000, description="least lead of a scheduled layout's preparation"
    )
    preroll_max_ms: int = Field(
        15_000, ge=0, le=600_000, description="most lead of a scheduled layout's preparation"
    )
    preroll_factor: float = Field(
        2.0, ge=1.0, le=10.0, description="lead = this times the layout's measured load time"
    )
    frame_rate_hz: int = Field(60, ge=1, le=240, description="upper bound of presented frames/s")
    sync_wait_ms: int = Field(
        3000, ge=0, le=60_000, description="a sync group's layout waits this long for group time"
    )
    identify_s: int = Field(30, ge=1, le=3600, description="how long 'identify' shows the name")
    restart_exit_code: int = Field(75, ge=1, le=255, description="exit code of 'restart'")
    quarantine_s: float = Field(
        86_400.0, gt=0, le=30 * 86_400, description="skip an item that crashed the player this long"
    )
    reboot_command: list[str] | None = Field(
        None, description="argv run by the 'reboot' command; disabled when unset"
    )

    @model_validator(mode="after")
    def _preroll_bounds(self) -> PlayerConfig:
        if self.preroll_min_ms > self.preroll_max_ms:
            raise ValueError("preroll_min_ms must not exceed preroll_max_ms")
        return self


class DisplayConfig(_Section):
    width: int | None = Field(None, ge=16, le=16_384, description="None: the screen's own size")
    height: int | None = Field(None, ge=16, le=16_384)
    fullscreen: bool = True
    rotation: Literal[0, 90, 180, 270] = 0
    driver: str | None = Field(None, description="SDL video driver, e.g. kmsdrm, x11, dummy")
    hide_cursor: bool = True
    renderer: Literal["auto", "gl", "software"] = Field(
        "auto", description="auto: OpenGL when a context can be made, else software"
    )
    power: Literal["auto", "cec", "drm", "x11", "none"] = Field(
        "auto", description="how the screen is put in standby and woken"
    )
    cec_device: str = Field("/dev/cec0", min_length=1, description="the CEC adapter")
    wake_lead_s: float = Field(
        10.0, ge=0, le=600, description="wake the screen this long before it is due on"
    )


# mpv's --hwdec values this player accepts (libmpv 0.35 takes one): the automatic modes and
# the Linux decoders. A name mpv does not know would silently decode in software.
HwDec = Literal[
    "no", "auto", "auto-safe", "auto-copy", "auto-copy-safe",
    "vaapi", "vaapi-copy", "vdpau", "vdpau-copy", "nvdec", "nvdec-copy", "cuda", "cuda-copy",
    "drm", "drm-copy", "v4l2m2m", "v4l2m2m-copy", "mmal", "mmal-copy", "rkmpp",
]  # fmt: skip


class VideoConfig(_Section):
    audio: bool = Field(False, description="play the sound of video items marked audio: true")
    volume: int = Field(100, ge=0, le=100, description="percent")
    audio_device: str | None = Field(None, description="mpv audio-device; None: the default")
    stall_s: Seconds = Field(5.0, description="skip a playing video that yields no frame this long")
    command_timeout_s: Seconds = Field(5.0, description="an mpv call this slow: replace the handle")
    spare_handles: int = Field(2, ge=0, le=8, description="idle mpv handles kept for reuse")
    hwdec: HwDec = Field(
        "auto-safe",
        description="mpv hardware decoding on the GL path (the software path always decodes "
        "in software); on a Pi name it: v4l2m2m-copy (H.264) or drm (HEVC), see docs/video.md",
    )


class ImageConfig(_Section):
    max_megapixels: float = Field(
        90.0, gt=0, le=1000, description="refuse pictures with more pixels (memory bound)"
    )
    decode_timeout_s: Seconds = Field(60.0, description="a picture decoding longer is skipped")


class CacheConfig(_Section):
    max_bytes: int = Field(8 * 1024**3, ge=1024**2, description="disk budget for cached assets")
    parallel_downloads: int = Field(2, ge=1, le=16)
    bandwidth_limit_bps: int | None = Field(None, ge=1024, description="bytes/s; None: no cap")
    verify_after_start: bool = True


class SyncConfig(_Section):
    server_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    device_name: str | None = Field(None, min_length=1, max_length=64)
    hardware_id: str | None = Field(None, min_length=1, max_length=128)
    heartbeat_interval_s: Seconds = 30.0
    poll_interval_s: Seconds = 60.0
    sse_failures_before_poll: int = Field(3, ge=1, le=100)
    connect_timeout_s: Seconds = 5.0
    backoff_max_s: Seconds = 60.0
    time_source: Literal["server", "system"] = Field(
        "server",
        description="group time of a sync group: the server's clock, or the system clock "
        "while NTP keeps it synchronised (the same on every screen of a group)",
    )
    time_interval_s: float = Field(
        8.0, ge=1, le=3_600, description="most time between two clock exchanges in a sync group"
    )


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    admin_token: SecretStr | None = None
    database_url: SecretStr | None = Field(None, description="default: SQLite in the data dir")
    redis_url: SecretStr | None = Field(
        None, description="shared state of several replicas; default: in this process"
    )
    auto_migrate: bool = Field(True, description="upgrade the database schema at start")
    workers: int = Field(
        1, ge=1, le=64, description="server processes on one port; more than 1 needs redis_url"
    )
    public_url: str | None = Field(None, description="address shown on pairing screens")
    pairing_ttl_s: Seconds = 300.0
    heartbeat_interval_s: Seconds = 30.0
    offline_after_missed: int = Field(3, ge=1, le=100)
    sse_ping_s: Seconds = 15.0
    command_ttl_s: Seconds = 3600.0
    upload_session_ttl_s: Seconds = 86_400.0
    max_upload_bytes: int = Field(2 * 1024**3, ge=1024)
    poll_interval_s: Seconds = Field(60.0, description="manifest polling when SSE is down")
    pairing_requests_per_ip: int = Field(10, ge=1, description="per minute")
    pairing_requests_per_hardware_id: int = Field(3, ge=1, description="per minute")
    claim_max_failures: int = Field(5, ge=1, description="wrong codes per admin and IP")
    claim_lockout_s: Seconds = Field(900.0, description="window of claim_max_failures")
    event_replay_size: int = Field(64, ge=1, le=10_000, description="events kept per device")
    screenshot_max_bytes: int = Field(8 * 1024**2, ge=1024)
    probe_timeout_s: Seconds = Field(30.0, description="checking one uploaded file, at most")
    probe_memory_bytes: int = Field(1024**3, ge=64 * 1024**2, description="per check")
    max_image_megapixels: float = Field(90.0, gt=0, le=1000, description="larger pictures refused")
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1",
        description="proxies trusted to set X-Forwarded-For/-Proto: addresses or networks, "
        "comma-separated; '*' any; '' none",
    )
    header_timeout_s: Seconds = Field(15.0, description="a request's headers must arrive within")
    body_timeout_s: Seconds = Field(60.0, description="longest silence inside a request body")
    keepalive_timeout_s: Seconds = Field(75.0, description="idle keep-alive connections closed")
    device_token_ttl_s: float = Field(
        90 * 86_400.0, ge=3600, le=3650 * 86_400.0, description="device tokens expire after"
    )
    auth_failures_per_ip: int = Field(30, ge=1, description="bad tokens per address and window")
    auth_failure_window_s: Seconds = Field(300.0, description="window of auth_failures_per_ip")
    sse_connects_per_ip: int = Field(300, ge=1, description="event stream connects per minute")
    impressions_keep_days: int = Field(90, ge=1, le=3650, description="raw proof-of-play rows")
    commands_keep_days: int = Field(30, ge=1, le=3650, description="finished or expired commands")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        for entry in (part.strip() for part in value.split(",")):
            if entry in ("", "*"):
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an address or a network") from exc
        return value


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


class Settings(_Section):
    data_dir: Path | None = Field(None, description="state directory; see core.state_dir")
    player: PlayerConfig = PlayerConfig()
    display: DisplayConfig = DisplayConfig()
    video: VideoConfig = VideoConfig()
    image: ImageConfig = ImageConfig()
    cache: CacheConfig = CacheConfig()
    sync: SyncConfig = SyncConfig()
    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()


def _parse_env_value(raw: str) -> Any:
    """Read an environment value as a TOML value when it is one, else as a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    data: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        if name in ENV_ALIASES:
            path: tuple[str, ...] = ENV_ALIASES[name]
        elif name.startswith(ENV_PREFIX) and "__" in name:
            path = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        else:
            continue
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(raw)
        origin[path] = name
    return data, origin


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems(exc: ValidationError, origin: dict[tuple[str, ...], str]) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = ".".join(str(p) for p in loc)
        source = origin.get(tuple(str(p) for p in loc))
        where = f" (from {source})" if source else ""
        if error["type"] == "extra_forbidden":
            known = _known_keys(loc)
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            suggestion = (
                f"; did you mean '{hint[0]}'?" if hint else f"; known keys: {', '.join(known)}"
            )
            problems.append(f"{path}{where}: unknown key{suggestion}")
            continue
        given = "" if error["type"] == "missing" else f" (got {_describe(error['input'])})"
        problems.append(f"{path}{where}: {error['msg']}{given}")
    return problems


def load_settings(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load and validate the configuration; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    source = None
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError([f"file not found: {path}"], source=source) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"not valid TOML: {exc}"], source=source) from exc
    env_data, origin = _env_overrides(env)
    data = _merge(_merge(data, env_data), overrides or {})
    try:
        # JSON mode in strict: "30" is not a number, but strings still make paths and secrets.
        return Settings.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, origin), source=source) from exc


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return {k: _masked(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def settings_to_toml(settings: Settings) -> str:
    """The effective configuration as TOML, secrets masked; unset optional keys are commented."""
    masked = _masked(settings)
    text = tomli_w.dumps(_drop_none(masked))
    unset = [
        f"# {section}.{key} is unset"
        for section, values in masked.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if value is None
    ]
    if masked.get("data_dir") is None:
        unset.insert(0, "# data_dir is unset (default state directory)")
    return text + ("\n" + "\n".join(unset) + "\n" if unset else "")
