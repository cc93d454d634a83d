"""Settings, read once from the environment at start-up (12-factor)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from livecommerce.iceurls import check_host_addresses, parse_server_url


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it, on one line."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment.

    ``redis_url`` of ``None`` means "start an embedded server"; ``database_url`` defaults to a
    SQLite file under ``data_dir``.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    redis_namespace: str = "lc"
    public_url: str = ""
    token_ttl_s: int = 30 * 24 * 3600
    cookie_secure: bool = False
    auto_migrate: bool = True
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_publishable_key: str = ""
    stripe_api_base: str = ""
    stripe_js_url: str = ""
    stripe_max_rps: float = 80.0
    hold_ttl_s: int = 600
    reaper_interval_s: float = 1.0
    max_unpaid_per_sku: int = 5
    max_unpaid_per_buyer: int = 10
    viewer_heartbeat_s: float = 20.0
    ice_hosts: tuple[str, ...] = ()
    ice_servers: tuple[str, ...] = ()
    media_url: str = ""
    internal_url: str = ""
    media_internal_secret: str = ""
    whep_redirect: bool = False
    ice_announced_address: str = ""
    ice_connect_timeout_s: float = 10.0
    whep_sessions_per_address: int = 20
    max_viewers_per_process: int = 0
    log_level: str = "INFO"
    log_json: bool = True
    shutdown_timeout_s: float = 10.0
    socket_events_per_second: float = 10.0
    socket_event_burst: int = 30
    socket_abuse_limit: int = 300
    sockets_per_address: int = 20
    socket_send_buffer_bytes: int = 64 * 1024
    socket_stuck_s: float = 10.0
    trusted_proxies: tuple[str, ...] = ()
    login_failures_per_account: int = 10
    login_failures_per_address: int = 50
    signups_per_address: int = 20
    auth_limit_window_s: int = 900
    metrics_token: str = ""
    header_read_timeout_s: float = 15.0
    body_read_timeout_s: float = 30.0
    # The listener answers the crowd's sure "sold out" itself (platform/fastlane.py).
    fast_lane: bool = True
    media_origins: tuple[str, ...] = ()
    workers: int | None = None
    worker_media_port: int = 0
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_tls: str = "starttls"
    mail_from: str = "livecommerce <no-reply@localhost>"
    # customer service: a case waiting longer than this for the seller's answer is late
    support_answer_s: float = 48 * 3600.0
    # show figures: one viewer-count sample per stream this often, across processes
    figures_sample_s: float = 10.0
    object_storage_bucket: str = ""
    object_storage_url: str = ""
    object_storage_region: str = "us-east-1"
    object_storage_key_id: str = ""
    object_storage_secret: str = ""
    object_storage_public_url: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"PORT must be between 1 and 65535, got {self.port}")
        if self.workers is not None and not 1 <= self.workers <= 1024:
            raise ConfigError("WEB_CONCURRENCY must be between 1 and 1024")
        if not 0 <= self.worker_media_port < 65536:  # 0: free ports picked at start-up
            raise ConfigError("WORKER_MEDIA_PORT must be between 1 and 65535")
        if not self.database_url:
            object.__setattr__(
                self,
                "database_url",
                f"sqlite+aiosqlite:///{self.data_dir / 'livecommerce.db'}",
            )
        scheme = urlsplit(self.database_url).scheme
        if scheme not in _DB_SCHEMES:
            raise ConfigError(
                f"DATABASE_URL must start with sqlite:// or postgresql://, got {scheme or 'nothing'}://"
            )
        object.__setattr__(
            self, "database_url", _DB_SCHEMES[scheme] + self.database_url[len(scheme) :]
        )
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        if self.hold_ttl_s < 10:
            raise ConfigError("HOLD_TTL_SECONDS must be at least 10")
        if not 1 <= self.max_unpaid_per_sku <= 10_000:
            raise ConfigError("MAX_UNPAID_PER_SKU must be between 1 and 10000")
        if not self.max_unpaid_per_sku <= self.max_unpaid_per_buyer <= 100_000:
            raise ConfigError(
                "MAX_UNPAID_PER_BUYER must be at least MAX_UNPAID_PER_SKU and at most 100000"
            )
        if not 0.05 <= self.reaper_interval_s <= 60:
            raise ConfigError("REAPER_INTERVAL_SECONDS must be between 0.05 and 60")
        if not 0.05 <= self.viewer_heartbeat_s <= 300:
            raise ConfigError("VIEWER_HEARTBEAT_SECONDS must be between 0.05 and 300")
        try:
            check_host_addresses(self.ice_hosts)
            for url in self.ice_servers:
                parse_server_url(url)
        except ValueError as exc:
            raise ConfigError(f"ICE_HOSTS / ICE_SERVERS: {exc}") from None
        if self.ice_announced_address:
            try:
                ipaddress.ip_address(self.ice_announced_address)
            except ValueError:
                raise ConfigError("ICE_ANNOUNCED_ADDRESS must be an IP address") from None
        if not 1 <= self.ice_connect_timeout_s <= 120:
            raise ConfigError("ICE_CONNECT_TIMEOUT_SECONDS must be between 1 and 120")
        if not 1 <= self.whep_sessions_per_address <= 100_000:
            raise ConfigError("WHEP_SESSIONS_PER_ADDRESS must be between 1 and 100000")
        if not 0 <= self.max_viewers_per_process <= 1_000_000:
            raise ConfigError("MAX_VIEWERS_PER_PROCESS must be between 0 (no cap) and 1000000")
        if self.stripe_max_rps <= 0:
            raise ConfigError("STRIPE_MAX_RPS must be positive")
        if self.stripe_secret_key and not self.stripe_secret_key.startswith(("sk_", "rk_")):
            raise ConfigError("STRIPE_SECRET_KEY must start with sk_ or rk_")
        if not 0 < self.socket_events_per_second <= 10_000:
            raise ConfigError("SOCKET_EVENTS_PER_SECOND must be between 0 and 10000")
        if not 1 <= self.socket_event_burst <= 100_000:
            raise ConfigError("SOCKET_EVENT_BURST must be between 1 and 100000")
        if self.socket_abuse_limit < 1:
            raise ConfigError("SOCKET_ABUSE_LIMIT must be at least 1")
        if self.sockets_per_address < 1:
            raise ConfigError("SOCKETS_PER_ADDRESS must be at least 1")
        if not 1024 <= self.socket_send_buffer_bytes <= 64 * 1024 * 1024:
            raise ConfigError("SOCKET_SEND_BUFFER_BYTES must be between 1024 and 67108864")
        if not 0.1 <= self.socket_stuck_s <= 3600:
            raise ConfigError("SOCKET_STUCK_SECONDS must be between 0.1 and 3600")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(
                    f"TRUSTED_PROXIES: {proxy!r} is not an address or network"
                ) from None
        if not self.redis_namespace.replace("-", "").replace("_", "").isalnum():
            raise ConfigError("REDIS_NAMESPACE may hold only letters, digits, - and _")
        self._check_security()
        if not 0 < self.smtp_port < 65536:
            raise ConfigError("SMTP_PORT must be between 1 and 65535")
        if self.smtp_tls not in ("starttls", "implicit", "none"):
            raise ConfigError("SMTP_TLS must be starttls, implicit or none")
        if "@" not in self.mail_from or any(c in self.mail_from for c in "\r\n"):
            raise ConfigError("MAIL_FROM must be an email address, optionally with a name")
        if not 1 <= self.support_answer_s <= 90 * 86400:
            raise ConfigError("SUPPORT_ANSWER_SECONDS must be between 1 and 7776000 (90 days)")
        if not 0.1 <= self.figures_sample_s <= 3600:
            raise ConfigError("FIGURES_SAMPLE_SECONDS must be between 0.1 and 3600")
        self._check_object_storage()

    def _check_object_storage(self) -> None:
        for name, url in (
            ("OBJECT_STORAGE_URL", self.object_storage_url),
            ("OBJECT_STORAGE_PUBLIC_URL", self.object_storage_public_url),
        ):
            parts = urlsplit(url)
            if url and (parts.scheme not in ("http", "https") or not parts.netloc):
                raise ConfigError(f"{name}: {url!r} is not an http(s) URL")
        bucket = self.object_storage_bucket
        if bucket and not (
            3 <= len(bucket) <= 63 and bucket.replace("-", "").replace(".", "").isalnum()
        ):
            raise ConfigError("OBJECT_STORAGE_BUCKET must be a bucket name (3-63 a-z 0-9 . -)")
        if (self.object_storage_url or self.object_storage_key_id) and not bucket:
            raise ConfigError("OBJECT_STORAGE_URL and keys need OBJECT_STORAGE_BUCKET")

    def _check_security(self) -> None:
        for name, value in (
            ("LOGIN_FAILURES_PER_ACCOUNT", self.login_failures_per_account),
            ("LOGIN_FAILURES_PER_ADDRESS", self.login_failures_per_address),
            ("SIGNUPS_PER_ADDRESS", self.signups_per_address),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 1 <= self.auth_limit_window_s <= 7 * 24 * 3600:
            raise ConfigError("AUTH_LIMIT_WINDOW_SECONDS must be between 1 and 604800")
        if not 1 <= self.header_read_timeout_s <= 300:
            raise ConfigError("HEADER_READ_TIMEOUT_SECONDS must be between 1 and 300")
        if not 1 <= self.body_read_timeout_s <= 600:
            raise ConfigError("BODY_READ_TIMEOUT_SECONDS must be between 1 and 600")
        for name, url in (("MEDIA_URL", self.media_url), ("INTERNAL_URL", self.internal_url)):
            parts = urlsplit(url)
            if url and (parts.scheme not in ("http", "https") or not parts.netloc):
                raise ConfigError(f"{name}: {url!r} is not an http(s) URL")
        if self.media_internal_secret and len(self.media_internal_secret) < 16:
            raise ConfigError("MEDIA_INTERNAL_SECRET must be at least 16 characters")
        for origin in self.media_origins:
            parts = urlsplit(origin)
            bad_path = parts.path not in ("", "/")
            if parts.scheme not in ("http", "https") or not parts.netloc or bad_path:
                raise ConfigError(f"MEDIA_ORIGINS: {origin!r} is not an http(s) origin")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, key, parse in _ENV:
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[key] = parse(raw)
            except ValueError:
                raise ConfigError(f"{name} is not valid: {raw!r}") from None
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


_DB_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _level(raw: str) -> str:
    return raw.strip().upper()


def _lower(raw: str) -> str:
    return raw.strip().lower()


_ENV: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("HOST", "host", str),
    ("PORT", "port", int),
    ("DATA_DIR", "data_dir", Path),
    ("DATABASE_URL", "database_url", str),
    ("REDIS_URL", "redis_url", str),
    ("REDIS_NAMESPACE", "redis_namespace", str),
    ("PUBLIC_URL", "public_url", str),
    ("TOKEN_TTL_SECONDS", "token_ttl_s", int),
    ("COOKIE_SECURE", "cookie_secure", _bool),
    ("AUTO_MIGRATE", "auto_migrate", _bool),
    ("STRIPE_SECRET_KEY", "stripe_secret_key", str),
    ("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret", str),
    ("STRIPE_PUBLISHABLE_KEY", "stripe_publishable_key", str),
    ("STRIPE_API_BASE", "stripe_api_base", str),
    ("STRIPE_JS_URL", "stripe_js_url", str),
    ("STRIPE_MAX_RPS", "stripe_max_rps", float),
    ("HOLD_TTL_SECONDS", "hold_ttl_s", int),
    ("REAPER_INTERVAL_SECONDS", "reaper_interval_s", float),
    ("MAX_UNPAID_PER_SKU", "max_unpaid_per_sku", int),
    ("MAX_UNPAID_PER_BUYER", "max_unpaid_per_buyer", int),
    ("VIEWER_HEARTBEAT_SECONDS", "viewer_heartbeat_s", float),
    ("ICE_HOSTS", "ice_hosts", _csv),
    ("ICE_SERVERS", "ice_servers", _csv),
    ("MEDIA_URL", "media_url", str),
    ("INTERNAL_URL", "internal_url", str),
    ("MEDIA_INTERNAL_SECRET", "media_internal_secret", str),
    ("WHEP_REDIRECT", "whep_redirect", _bool),
    ("ICE_ANNOUNCED_ADDRESS", "ice_announced_address", str),
    ("ICE_CONNECT_TIMEOUT_SECONDS", "ice_connect_timeout_s", float),
    ("WHEP_SESSIONS_PER_ADDRESS", "whep_sessions_per_address", int),
    ("MAX_VIEWERS_PER_PROCESS", "max_viewers_per_process", int),
    ("LOG_LEVEL", "log_level", _level),
    ("LOG_JSON", "log_json", _bool),
    ("SHUTDOWN_TIMEOUT", "shutdown_timeout_s", float),
    ("SOCKET_EVENTS_PER_SECOND", "socket_events_per_second", float),
    ("SOCKET_EVENT_BURST", "socket_event_burst", int),
    ("SOCKET_ABUSE_LIMIT", "socket_abuse_limit", int),
    ("SOCKETS_PER_ADDRESS", "sockets_per_address", int),
    ("SOCKET_SEND_BUFFER_BYTES", "socket_send_buffer_bytes", int),
    ("SOCKET_STUCK_SECONDS", "socket_stuck_s", float),
    ("TRUSTED_PROXIES", "trusted_proxies", _csv),
    ("LOGIN_FAILURES_PER_ACCOUNT", "login_failures_per_account", int),
    ("LOGIN_FAILURES_PER_ADDRESS", "login_failures_per_address", int),
    ("SIGNUPS_PER_ADDRESS", "signups_per_address", int),
    ("AUTH_LIMIT_WINDOW_SECONDS", "auth_limit_window_s", int),
    ("METRICS_TOKEN", "metrics_token", str),
    ("HEADER_READ_TIMEOUT_SECONDS", "header_read_timeout_s", float),
    ("BODY_READ_TIMEOUT_SECONDS", "body_read_timeout_s", float),
    ("FAST_LANE", "fast_lane", _bool),
    ("MEDIA_ORIGINS", "media_origins", _csv),
    ("WEB_CONCURRENCY", "workers", int),
    ("WORKER_MEDIA_PORT", "worker_media_port", int),
    ("SMTP_HOST", "smtp_host", str),
    ("SMTP_PORT", "smtp_port", int),
    ("SMTP_USERNAME", "smtp_username", str),
    ("SMTP_PASSWORD", "smtp_password", str),
    ("SMTP_TLS", "smtp_tls", _lower),
    ("MAIL_FROM", "mail_from", str),
    ("SUPPORT_ANSWER_SECONDS", "support_answer_s", float),
    ("FIGURES_SAMPLE_SECONDS", "figures_sample_s", float),
    ("OBJECT_STORAGE_BUCKET", "object_storage_bucket", str),
    ("OBJECT_STORAGE_URL", "object_storage_url", str),
    ("OBJECT_STORAGE_REGION", "object_storage_region", str),
    ("OBJECT_STORAGE_KEY_ID", "object_storage_key_id", str),
    ("OBJECT_STORAGE_SECRET", "object_storage_secret", str),
    ("OBJECT_STORAGE_PUBLIC_URL", "object_storage_public_url", str),
)
