"""Typed settings for reelm: one class, every field documented, read from `REELM_*` variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of a reelm deployment.

    Each field's `description` is the documentation; `docs/settings.md` lists them all and a test
    fails when one is missing there.
    """

    model_config = SettingsConfigDict(env_prefix="REELM_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Folder that holds the embedded default: the global SQLite file, one SQLite "
        "file and one blob folder per region, key files and the active policy.",
    )
    policy_file: Path | None = Field(
        default=None,
        description="Residency policy TOML. Default: `<data_dir>/policy.toml`, which `reelm init` "
        "writes from the built-in demo policy when it is missing.",
    )
    global_database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the global database (Directory, PublicCatalog). Default: "
        "`sqlite:///<data_dir>/global.db`.",
    )
    region_database_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Per-region database URL overrides, as JSON: `{"us": "postgresql+psycopg://..."}`.'
        " A region not named here uses the `database_url` of its policy entry.",
    )
    region_redis_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Per-region Redis URLs for the job queue, as JSON: `{"us": "redis://...:6379/0"}`.'
        " A region named here (or whose policy entry has `redis_url`) keeps its queue on that "
        "Redis (Huey's RedisHuey); any other region on a SQLite file in its work folder.",
    )
    secret_key: str = Field(
        default="dev-insecure-change-me",
        description="Secret used to sign CSRF tokens and expiring download links. Set a long random "
        "value in production.",
    )
    session_ttl_hours: int = Field(
        default=24 * 30,
        ge=1,
        description="Lifetime of a login session, in hours.",
    )
    session_pass_seconds: int = Field(
        default=30,
        ge=0,
        le=300,
        description="How long a signed session pass (the `reelm_pass` cookie) lets reads skip the "
        "session-table lookup, in seconds; a revoked or expired session keeps reading for at "
        "most this long (writes always look the session up). 0 turns passes off.",
    )
    argon2_time_cost: int = Field(
        default=3,
        ge=1,
        description="argon2id passes over memory (RFC 9106 second recommendation: 3).",
    )
    argon2_memory_kib: int = Field(
        default=65536,
        ge=8,
        description="argon2id memory in KiB (RFC 9106 second recommendation: 64 MiB).",
    )
    argon2_parallelism: int = Field(default=4, ge=1, description="argon2id lanes.")
    login_max_failures_per_handle: int = Field(
        default=5,
        ge=1,
        description="Failed logins allowed per account within the rate-limit window (counted on "
        "the account's row in its home region).",
    )
    login_max_failures_per_address: int = Field(
        default=20,
        ge=1,
        description="Failed logins allowed per client address within the rate-limit window.",
    )
    login_window_seconds: int = Field(
        default=300, ge=1, description="Length of the login rate-limit window, in seconds."
    )
    login_throttle_url: str | None = Field(
        default=None,
        description="Where the web processes count failed logins per client address (as an HMAC "
        "of the address, kept for the window only): `redis://host:6379/0` for a Redis that every "
        "web machine reaches, or `sqlite:////path/file.db`. Default: `<data_dir>/throttle.db`, "
        "shared by the processes of one machine. Never the global database.",
    )
    export_link_ttl_seconds: int = Field(
        default=3600, ge=60, description="How long a download-my-data link stays valid, in seconds."
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024, description="Largest upload accepted, in bytes."
    )
    max_video_seconds: float = Field(
        default=180.0, gt=1, description="Longest upload accepted, in seconds."
    )
    jobs_immediate: bool = Field(
        default=False,
        description="Run background jobs (transcodes, exports) inside the request instead of on "
        "the region's queue workers. For tests and single-shot scripts only.",
    )
    reports_per_hour: int = Field(
        default=30,
        ge=1,
        description="Reports one user may file in an hour (counted from their own reports, in "
        "their region); more are refused with 429 until the hour has passed.",
    )
    audit_origin: str = Field(
        default="reelm.example/{region}",
        description="Origin line of each region's audit-log checkpoints (the log's name, and the "
        "name of its signing key); `{region}` is replaced by the region name. Fixed when the "
        "region's key is created.",
    )
    feed_train_minutes: int = Field(
        default=15,
        ge=1,
        le=60,
        description="Every how many minutes each region's worker retrains that region's For You "
        "model and refreshes its candidate pools (and once when the worker starts, if the model "
        "is missing or older).",
    )
    federation_base_url: str | None = Field(
        default=None,
        description="The public origin of this deployment for ActivityPub (e.g. "
        "`https://reelm.example`): actor ids, WebFinger and inboxes are under it. Unset: "
        "federation is off and its endpoints answer 404.",
    )
    federation_mode: Literal["allowlist", "open"] = Field(
        default="allowlist",
        description="`allowlist`: federate only with instances `reelm federation allow` named; "
        "`open`: with every instance not blocked.",
    )
    federation_max_body_bytes: int = Field(
        default=262_144, ge=1024, description="Largest inbound activity accepted (413 above)."
    )
    federation_signature_skew_seconds: int = Field(
        default=300,
        ge=10,
        description="How far a signed request's Date may be from now before it is refused as "
        "a replay (401).",
    )
    federation_max_tries: int = Field(
        default=10,
        ge=1,
        description="Tries of one outbound delivery before it is parked in the dead-letter "
        "list (`reelm federation deliveries`).",
    )
    federation_retry_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Wait before a failed delivery's second try; each further wait doubles, "
        "up to six hours.",
    )
    federation_loopback_http_for_tests: bool = Field(
        default=False,
        description="TEST ONLY: let federation fetch and deliver over plain http and to "
        "loopback or private addresses (two deployments or a test peer on one machine). Never "
        "in production: it opens the server to request forgery against internal addresses.",
    )
    feed_candidates_days: int = Field(
        default=7,
        ge=0,
        description="After each training, the region's worker precomputes the For You candidate "
        "set of every user of the region with a session seen in the last this many days "
        "(0: none; their sessions are then built live).",
    )
    feed_candidates_max_age_minutes: int = Field(
        default=60,
        ge=1,
        description="A stored For You candidate set older than this is not used; the session is "
        "built live instead.",
    )
    host: str = Field(default="127.0.0.1", description="Address `reelm serve` listens on.")
    port: int = Field(default=8000, description="Port `reelm serve` listens on.")
    web_workers: int | None = Field(
        default=None,
        ge=1,
        description="Web processes `reelm serve` runs on its port (uvicorn's workers). Default: "
        "the number of cores. They share no memory: sessions, login throttles, CSRF tokens and "
        "For You cursors hold across them.",
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark session cookies Secure (set true behind HTTPS).",
    )

    @cached_property
    def resolved_policy_file(self) -> Path:
        return self.policy_file if self.policy_file is not None else self.data_dir / "policy.toml"

    @cached_property
    def resolved_global_database_url(self) -> str:
        if self.global_database_url:
            return self.global_database_url
        return f"sqlite:///{(self.data_dir / 'global.db').resolve()}"
