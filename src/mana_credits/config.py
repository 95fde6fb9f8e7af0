"""Settings read from the environment, with the variable names of the old service."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SERVICE_KEY = "dev-service-key"

# A hold lasts at most a week, whatever the caller or the configuration asks.
MAX_HOLD_TTL_SECONDS = 7 * 86_400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def hold_ttls(raw: str) -> dict[str, int]:
    """`app:duration,…` (duration: a whole number and s, m, h or d; app `*`: every other app) → seconds.
    Raises ValueError naming the bad entry."""
    ttls: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        app, _, duration = item.rpartition(":")
        number, unit = duration[:-1], duration[-1:]
        if not app or not number.isdigit() or unit not in _UNITS:
            raise ValueError(f"HOLD_TTL_DEFAULTS entry {item!r} is not app:duration (e.g. mana-research:7d)")
        seconds = int(number) * _UNITS[unit]
        if not 1 <= seconds <= MAX_HOLD_TTL_SECONDS:
            raise ValueError(f"HOLD_TTL_DEFAULTS entry {item!r} is outside 1s..7d")
        ttls[app] = seconds
    return ttls


def writes_go_to_the_primary(url: str) -> bool:
    """A URL of one host, or of several (`h1:p1,h2:p2`) that asks for the writable one."""
    parts = urlsplit(url)
    if "," not in parts.netloc.rpartition("@")[2] and len(parse_qs(parts.query).get("host", [])) < 2:
        return True
    attrs = parse_qs(parts.query).get("target_session_attrs", [])
    return bool(attrs) and attrs[-1] in ("read-write", "primary")


def standbys_of(url: str) -> str | None:
    """The same hosts asking for a standby, when the URL names several hosts; else None."""
    parts = urlsplit(url)
    if "," not in parts.netloc.rpartition("@")[2]:
        return None
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, "target_session_attrs": "standby"})))


class Settings(BaseSettings):
    # An empty variable means "use the default", as in the old service (`KEY=` in a compose file).
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=True, extra="ignore", env_ignore_empty=True
    )

    PORT: int = 3061
    DATABASE_URL: str | None = None
    # Optional read replica for read-heavy routes (own balance, history); everything else uses DATABASE_URL.
    DATABASE_READ_URL: str | None = None
    # Where balance reads and the internal sync status are answered while the primary is unreachable:
    # unset, the standbys of a multi-host DATABASE_URL; "off" never. Only a standby at most
    # STANDBY_READ_STALENESS seconds behind answers (kit.standby).
    DATABASE_STANDBY_URL: str | None = None
    STANDBY_READ_STALENESS: float = Field(default=30.0, gt=0)
    MANA_AUTH_URL: str = "http://localhost:3001"
    JWT_ISSUER: str | None = None
    JWT_AUDIENCE: str = "mana"
    MANA_SERVICE_KEY: str = DEV_SERVICE_KEY
    MANA_SERVICE_KEYS: str = ""
    # This server's public address; unset, http://localhost:{PORT}.
    BASE_URL: str = "http://localhost:3061"
    # The web app: every link meant for a person (pause mail, gift links) points here, not at the API.
    # Unset in development, it is this server (its own /g/ and /settings/sync pages), not production.
    WEB_APP_URL: str = "https://mana.how"
    STRIPE_SECRET_KEY: str | None = None
    STRIPE_WEBHOOK_SECRET: str | None = None
    STRIPE_API_BASE: str | None = None
    # The Stripe reconciliation job (books/tasks.py): how often, over how many days back, and whether it
    # applies what lost webhooks missed. Off without STRIPE_SECRET_KEY or with the interval 0.
    STRIPE_RECONCILE_INTERVAL_SECONDS: int = Field(default=86400, ge=0)
    STRIPE_RECONCILE_DAYS: int = Field(default=7, ge=1, le=365)
    STRIPE_RECONCILE_FIX: bool = True
    CORS_ORIGINS: str = "http://localhost:5173,http://localhost:5180"
    MANA_NOTIFY_URL: str = "http://localhost:3040"
    # 0 switches the renewal job off (an external cron calls the internal charge-recurring trigger).
    SYNC_BILLING_INTERVAL_SECONDS: int = Field(default=3600, ge=0)
    GIFT_CODE_LENGTH: int = Field(default=8, ge=6, le=32)
    MANA_CREDITS_ENV: Literal["production", "development"] = "production"
    # Where the embedded PostgreSQL and the development signing key live.
    MANA_CREDITS_DATA_DIR: Path = Path(".data")
    # Connections per server worker (one worker on 2 cores; see bench/README.md).
    DB_POOL_SIZE: int = Field(default=10, ge=1)
    # Keyless usage debits of any accounts applied together, one statement a batch: ledger.group.
    GROUP_COMMIT: bool = True
    # Proxies whose X-Forwarded-For names the real client (rate limits per address); comma list or "*".
    # Unset means 127.0.0.1 (and a warning once when X-Forwarded-For arrives from another peer).
    TRUSTED_PROXIES: str | None = None
    # Apps named in the metrics' `app` label besides the apps of MANA_SERVICE_KEYS (comma list); any other
    # appId is counted as "other", so callers cannot grow /metrics without bound.
    METRICS_APPS: str = ""
    # How long a hold lasts when the reserve sends no ttlSeconds, per calling app (`*`: any other app; 24h
    # without it). mana-research commits when the user polls a finished job, possibly days later.
    HOLD_TTL_DEFAULTS: str = "mana-research:7d,*:24h"
    # Background jobs (renewals, expiry sweeps, outbox) run in each server process unless disabled.
    MANA_CREDITS_SCHEDULER: bool = True

    @model_validator(mode="after")
    def _links_stay_local_in_development(self) -> Settings:
        if "BASE_URL" not in self.model_fields_set:
            self.BASE_URL = f"http://localhost:{self.PORT}"
        if self.is_development and "WEB_APP_URL" not in self.model_fields_set:
            self.WEB_APP_URL = self.BASE_URL
        return self

    @property
    def is_development(self) -> bool:
        return self.MANA_CREDITS_ENV == "development"

    @cached_property
    def jwt_issuers(self) -> list[str]:
        raw = self.JWT_ISSUER or self.MANA_AUTH_URL
        return [item.strip() for item in raw.split(",") if item.strip()]

    @property
    def jwks_url(self) -> str:
        return f"{self.MANA_AUTH_URL.rstrip('/')}/api/auth/jwks"

    @cached_property
    def cors_origins(self) -> list[str]:
        return [item.strip() for item in self.CORS_ORIGINS.split(",") if item.strip()]

    @cached_property
    def service_keys(self) -> dict[str, str]:
        """Per-app keys, `app:key,app:key` → {key: app}."""
        keys: dict[str, str] = {}
        for item in self.MANA_SERVICE_KEYS.split(","):
            app, sep, key = item.strip().partition(":")
            if sep and app and key:
                keys[key] = app
        return keys

    @cached_property
    def hold_ttl_defaults(self) -> dict[str, int]:
        return {"*": 86_400, **hold_ttls(self.HOLD_TTL_DEFAULTS)}

    def hold_ttl_for(self, app_id: str) -> int:
        """Seconds a hold of `app_id` lasts when the reserve names no ttlSeconds."""
        return self.hold_ttl_defaults.get(app_id, self.hold_ttl_defaults["*"])

    @property
    def standby_url(self) -> str | None:
        if self.DATABASE_STANDBY_URL == "off":
            return None
        return self.DATABASE_STANDBY_URL or (standbys_of(self.DATABASE_URL) if self.DATABASE_URL else None)

    @property
    def trusted_proxies(self) -> str:
        return self.TRUSTED_PROXIES or "127.0.0.1"

    @property
    def dev_key_path(self) -> Path:
        return self.MANA_CREDITS_DATA_DIR / "dev-jwt-key.pem"

    def check_safe_to_start(self) -> None:
        """Refuse a configuration that would run but misbehave; the message is one line for the log."""
        if self.STRIPE_WEBHOOK_SECRET and not self.STRIPE_SECRET_KEY:
            raise RuntimeError(
                "STRIPE_WEBHOOK_SECRET is set without STRIPE_SECRET_KEY: webhooks would be accepted but "
                "purchases cannot be made; set both or neither"
            )
        if self.DATABASE_URL and not writes_go_to_the_primary(self.DATABASE_URL):
            raise RuntimeError(
                "DATABASE_URL names several hosts without target_session_attrs=read-write (or primary): "
                "after a failover the pool could stay on a standby and every write would fail; add it"
            )
        try:
            hold_ttls(self.HOLD_TTL_DEFAULTS)  # a typo stops the start, not the first reserve
        except ValueError as error:
            raise RuntimeError(str(error)) from None
        if self.is_development:
            return
        if self.MANA_SERVICE_KEY == DEV_SERVICE_KEY or DEV_SERVICE_KEY in self.service_keys:
            raise RuntimeError(
                "MANA_SERVICE_KEY is unset, empty or the well-known 'dev-service-key'; set a secret key "
                "or MANA_CREDITS_ENV=development"
            )
