"""Service settings, from `COURSEPULSE_*` environment variables or CLI flags."""

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The values PostgreSQL's plan_cache_mode takes.
PlanCacheMode = Literal["auto", "force_generic_plan", "force_custom_plan"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./coursepulse.db"


class Settings(BaseSettings):
    """Everything configurable about one coursepulse process."""

    model_config = SettingsConfigDict(env_prefix="COURSEPULSE_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Base URL clients reach this service at; links (certificates) are built on it.
    public_url: str = ""
    #: Browser origins (SPAs) allowed by CORS and for websocket handshakes; comma-separated.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: How long a verified credential is trusted without hashing the password again.
    auth_cache_seconds: float = Field(default=30.0, ge=0)
    #: The school that issues the Open Badges credentials (the issuer profile's name).
    issuer_name: str = Field(default="coursepulse", min_length=1, max_length=200)
    #: Study time an enrolment may have credited at once; it refills one second per second,
    #: so recorded time never outruns the clock (recordActivity).
    activity_allowance_seconds: int = Field(default=3600, ge=1, le=31_536_000)
    log_level: str = "INFO"
    #: `json` (one object per line), `text`, or `auto`: JSON unless stderr is a terminal.
    log_format: Literal["auto", "json", "text"] = "auto"
    #: JSON log lines are written in batches at most this many seconds apart (a warning or
    #: error at once, with the lines before it); 0 writes every line as it comes.
    log_flush_seconds: float = Field(default=0.5, ge=0, le=60)
    #: /metrics: `on`, `off`, or `token:<secret>` (scrapes send `Authorization: Bearer <secret>`).
    metrics: str = "on"
    #: Requests slower than this many seconds are logged as warnings.
    slow_request_seconds: float = Field(default=1.0, gt=0)
    #: Serve the GraphiQL explorer to browsers on GET /graphql.
    graphiql: bool = True
    #: Run queries from a plan compiled once per document where their shape allows it
    #: (schema/compiled_queries.py); off: graphql-core's executor runs every query.
    compiled_queries: bool = True
    #: Seconds between websocket pings; a peer that does not answer is dropped.
    ws_heartbeat_seconds: float = Field(default=20.0, gt=0)
    #: Whether websockets accept permessage-deflate when a client offers it (browsers
    #: always do): each such socket then keeps zlib state, about 100 KiB even while idle
    #: (22 KiB without), and every message is compressed for each subscriber apart.
    ws_compression: bool = False
    #: Seconds a websocket client has to send connection_init.
    ws_init_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Events a live subscription may have waiting before it must resume with `after`.
    subscription_buffer: int = Field(default=1000, ge=1)
    #: Also read the event log this often for live subscribers (0: only when woken). Needed
    #: when several processes share a SQLite file; PostgreSQL's NOTIFY wakes every process.
    event_poll_seconds: float = Field(default=0.0, ge=0)
    #: Seconds between checks that open websockets' sign-ins and live subscriptions still hold
    #: (0: only when an access change is heard). Catches a missed notice.
    access_recheck_seconds: float = Field(default=60.0, ge=0)
    #: Most a request may cost (see README, "Query limits"); anonymous requests get less.
    max_query_cost: int = Field(default=50_000, ge=1)
    anonymous_max_query_cost: int = Field(default=20_000, ge=1)
    #: Bytes of documents registered by automatic persisted queries (per process).
    persisted_queries_bytes: int = Field(default=1_000_000, ge=0)
    #: A trusted-documents manifest ({sha256: document}); when set, only those documents run.
    trusted_documents: Path | None = None
    #: Log every SQL statement (development only).
    sql_echo: bool = False
    #: PostgreSQL connections each process's pool holds at most (one more listens for
    #: notifications): size the server's max_connections by processes x (this + 1).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    #: How PostgreSQL plans the service's statements (its plan_cache_mode): once per
    #: connection (`force_generic_plan`), or left to PostgreSQL's choice (`auto`).
    db_plan_cache_mode: PlanCacheMode = "force_generic_plan"

    # ---- sign-in throttling (web/throttle.py), per process --------------------------------
    #: Length of the sliding window failed sign-ins are counted in.
    signin_window_seconds: float = Field(default=60.0, gt=0)
    #: Failed sign-ins one client address may make in a window, whatever the usernames.
    signin_failures_per_address: int = Field(default=200, ge=1)
    #: Failed sign-ins for one username from one address in a window.
    signin_failures_per_user_and_address: int = Field(default=10, ge=1)
    #: Failed sign-ins for one username from all addresses that never signed in as that
    #: user, in a window; over it those addresses are refused for it, known ones are not.
    signin_failures_per_user: int = Field(default=100, ge=1)
    #: Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For is
    #: believed for the client address; empty: the peer address is the client's.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # ---- connection limits -----------------------------------------------------------------
    #: Seconds a connection may take to send a complete request head (from its opening or
    #: the end of its previous response); also how long an idle keep-alive connection stays.
    http_header_timeout_seconds: float = Field(default=15.0, gt=0)
    #: Seconds a client may take to send a request body.
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Open websockets one user may have (anonymous ones: one address), per process.
    max_websockets_per_user: int = Field(default=20, ge=1)
    #: Operations (subscriptions) one user may have running over websockets, per process.
    max_subscriptions_per_user: int = Field(default=100, ge=1)

    # ---- webhooks (delivery/worker.py) ----------------------------------------------------
    #: Run the webhook worker in this process (every serve process may: claims keep them apart).
    webhook_delivery: bool = True
    #: Let webhooks reach loopback, private and link-local addresses (tests, closed networks).
    webhook_allow_private: bool = False
    #: Seconds a receiver has to answer a delivery.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: The first retry's wait; each further one doubles, up to the longest.
    webhook_retry_first_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    #: A webhook failing this long is switched off (about a day).
    webhook_give_up_seconds: float = Field(default=86_400.0, gt=0)
    #: Seconds between looks for due retries and webhooks made by other processes.
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    #: Webhooks one process delivers at once.
    webhook_concurrency: int = Field(default=8, ge=1, le=256)
    #: Days deliveries are kept for their owners to read.
    webhook_delivery_retention_days: float = Field(default=30.0, gt=0)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics_mode(cls, value: str) -> str:
        if value in ("on", "off") or (value.startswith("token:") and len(value) > len("token:")):
            return value
        raise ValueError("metrics must be on, off or token:<secret>")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [proxy.strip() for proxy in value.split(",") if proxy.strip()]
        if isinstance(value, list):
            for proxy in value:
                ipaddress.ip_network(proxy, strict=False)  # ValueError: not an address
        return value

    @property
    def base_url(self) -> str:
        """The public URL, or one made from host and port when it is not set."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"
