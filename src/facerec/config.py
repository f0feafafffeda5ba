"""One settings object for the whole service.

Built once (``Settings()``) from ``FACEREC_*`` environment variables and an optional ``.env``
file, then injected. Nested groups use ``__`` in variable names, e.g.
``FACEREC_MODELS__MEMORY_BUDGET_MB=512``. Nothing else in the code reads ``os.environ``.

Every group is imported from here; the inference pipeline's groups (``models``, ``liveness``,
``limits``) are written in :mod:`facerec.config_inference`, the vector index's (``index``) in
:mod:`facerec.config_index`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facerec.config_index import IndexSettings as IndexSettings

# Imported as themselves: every settings group is imported from facerec.config.
from facerec.config_inference import LimitSettings as LimitSettings
from facerec.config_inference import LivenessSettings as LivenessSettings
from facerec.config_inference import ModelSettings as ModelSettings

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: LogLevel = "info"
    log_dir: Path = Path("logs")
    log_file_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    log_file_backups: int = Field(5, ge=0)
    # Inference jobs waiting for an executor thread beyond this answer 429.
    max_pending_jobs: int = Field(64, ge=1)
    executor_threads: int = Field(2, ge=1, le=64)
    # Origins (scheme://host[:port]) whose browser pages may call the API (CORS); empty: no
    # cross-site browser access, and cross-site POST/PATCH/DELETE answer 403.
    cors_origins: list[str] = Field(default_factory=list)


class DatabaseSettings(BaseModel):
    # Embedded default: a SQLite file under ./data. PostgreSQL: postgresql+asyncpg://...
    url: str = "sqlite+aiosqlite:///data/facerec.db"
    echo: bool = False
    pool_size: int = Field(5, ge=1)
    # Base64 of 32 random bytes: faces.embedding and persons.metadata are then stored encrypted
    # (AES-256-GCM, storage/sealing.py), so erased rows stay unreadable in old pages, WAL and
    # backups once this key is rotated away or destroyed. None: stored in plaintext.
    encryption_key: SecretStr | None = None


class CacheSettings(BaseModel):
    # None: in-process memory cache. redis://host:port/db for a shared cache.
    redis_url: str | None = None
    ttl_seconds: int = Field(3600, ge=1)
    memory_max_items: int = Field(10_000, ge=1)
    # Bytes the in-process cache (when no Redis) may hold, keys, values and bookkeeping counted;
    # the least recently used entries are evicted beyond it or beyond memory_max_items.
    memory_max_mb: int = Field(32, ge=1)
    # Recent query results (a probe's detection and embedding) live only in this process, never
    # in Redis, and for at most this long: an erased person's probe embeddings never sit in a
    # shared cache.
    query_ttl_seconds: int = Field(300, ge=1)
    query_max_items: int = Field(2_000, ge=1)
    query_max_mb: int = Field(16, ge=1)
    # Persons' templates (each face's vector and quality) for the recognize score: this process
    # only, never Redis, purged like person records (facerec.domain.templates).
    template_max_mb: int = Field(16, ge=1)
    # Purges that could not reach Redis are written here and replayed when it answers, also
    # after a restart.
    pending_purges_file: Path = Path("data/cache-pending-purges.json")


class MemorySettings(BaseModel):
    # glibc malloc tuning applied by each worker process at start (facerec.cache.allocator); on
    # other C libraries these do nothing. Measured in BENCHMARKS.md ("Memory"), docs/memory.md.
    # Heaps malloc keeps for threads (decoding and inference run in executor threads); 0: glibc's
    # default of 8 per core, each one holding freed memory of its own.
    malloc_arena_max: int = Field(2, ge=0, le=64)
    # Allocations of at least this many KiB (large decoded photos) get their own pages, returned
    # to the system when freed; smaller ones (a 1920 px photo decoded at half size, 3 MiB) reuse
    # heap pages instead of faulting fresh ones in on every request (docs/memory.md: 1024 KiB was
    # ~10% slower on mixed photo sizes, for ~10 MiB less RSS). 0: glibc's default, a threshold
    # that rises up to 32 MiB after the first large free, so later large buffers stay in the heaps.
    malloc_mmap_threshold_kb: int = Field(4096, ge=0, le=32 * 1024)
    # Free memory at the top of a heap beyond this many KiB is given back at once; below it, it
    # waits for the periodic trim (so the next request does not fault the same pages in again).
    # 0: glibc's own (128 KiB once the mmap threshold is set).
    malloc_trim_threshold_kb: int = Field(64 * 1024, ge=0, le=1024 * 1024)
    # Freed heap memory is handed back to the system this often (malloc_trim); 0: never.
    malloc_trim_interval_s: float = Field(30.0, ge=0.0)
    # RetinaFace runs on more pixels than this hand the memory they grew onnxruntime's arena by
    # back afterwards (e.g. 409600 = 640 x 640: ~35 MiB less RSS after large photos, ~20 ms more
    # per photo detected above that size); 0: the arena keeps its largest run (fastest).
    detector_arena_keep_pixels: int = Field(0, ge=0)
    # RetinaFace runs in progress at once (other threads' runs, a shared batch's images) hold at
    # most this many input pixels together; a larger batch runs in parts, and larger runs wait for
    # one another. onnxruntime's arena keeps the activations of every run in progress (~50 MiB
    # per 1024 x 768 input) for the process's life. 0: no bound.
    detector_run_pixels: int = Field(1024 * 1024, ge=0)


class AuthSettings(BaseModel):
    # API keys are required whenever server.host is not loopback (127.0.0.1, ::1, localhost);
    # ``required`` forces them on loopback too. Off beyond loopback only with
    # ``allow_unauthenticated`` (a warning is logged at start-up). Off: every request acts as
    # tenant ``default`` with every scope.
    required: bool = False
    allow_unauthenticated: bool = False
    # Key of the HMAC that stores key secrets; changing it invalidates every key. Unset: a fixed
    # built-in key (anyone who can write the database could then add keys of their own).
    pepper: SecretStr | None = None
    # A key's record is reread from the database at most this often per process: the longest a
    # revoked key keeps working in other processes.
    cache_seconds: float = Field(5.0, ge=0.0, le=60.0)
    # Token bucket per key (in Redis when cache.redis_url is set); 0: no limit.
    rate_per_second: float = Field(20.0, ge=0.0)
    burst: int = Field(40, ge=1)
    # A bearer token that may read /metrics (besides admin keys), for Prometheus.
    metrics_token: SecretStr | None = None


class StreamSettings(BaseModel):
    # Frames one /ws/recognize socket processes per second when its client does not ask for
    # fewer; also the most a client may ask for (frames beyond it are dropped, newest kept).
    max_fps: float = Field(10.0, gt=0.0, le=1000.0)
    # A socket that sends nothing (no config, frame or ping) for this long is closed (4408).
    idle_timeout_seconds: float = Field(30.0, gt=0.0)
    # Largest WebSocket message (a binary frame or a JSON text); beyond it the socket is closed
    # (1009). Run uvicorn with a --ws-max-size at least this large.
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Largest frame, from its header, before decoding (3840x2160 by default); larger frames get
    # an error message (frame_too_large) and the socket stays open.
    max_frame_pixels: int = Field(3840 * 2160, ge=1)


class EventSettings(BaseModel):
    """Identification, presence and tagging events (facerec.events): MQTT and signed webhooks."""

    # mqtt://[user[:password]@]host[:1883] or mqtts://... (TLS); None: no MQTT.
    mqtt_url: str | None = None
    # Topics are <prefix>/<tenant>/<collection>/<event type>.
    mqtt_topic_prefix: str = "facerec"
    mqtt_qos: Literal[0, 1, 2] = 1
    # None: facerec-<pid>-<random> (one per process, so workers do not knock each other off).
    mqtt_client_id: str | None = None
    mqtt_keepalive_s: int = Field(30, ge=5, le=3600)
    # A message the broker has not acknowledged this long after sending is counted as failed.
    mqtt_ack_timeout_s: float = Field(10.0, gt=0)
    # Messages handed to the MQTT client and not yet acknowledged, at most.
    mqtt_max_buffered: int = Field(1000, ge=1)
    # Reconnection backoff: from min doubling to max seconds.
    mqtt_reconnect_min_s: int = Field(1, ge=1)
    mqtt_reconnect_max_s: int = Field(30, ge=1)
    # JSON list of http(s) URLs; each POST is signed with webhook_secret (required with URLs).
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = Field(10.0, gt=0)
    # Attempts in all (the first included); between them backoff_s doubling up to backoff_max_s.
    webhook_max_attempts: int = Field(5, ge=1, le=50)
    webhook_backoff_s: float = Field(1.0, ge=0)
    webhook_backoff_max_s: float = Field(60.0, ge=0)
    # Deliveries in flight per URL.
    webhook_concurrency: int = Field(4, ge=1, le=256)
    # Events that failed every attempt, kept in memory for an admin (the newest this many).
    dead_letters_kept: int = Field(100, ge=0)
    # Events waiting per sink before new ones are dropped (and counted).
    max_queue: int = Field(10_000, ge=1)

    @field_validator("mqtt_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must start with http:// or https://: {url!r}")
        return urls

    @model_validator(mode="after")
    def _signed(self) -> EventSettings:
        if self.webhook_urls and not (
            self.webhook_secret and self.webhook_secret.get_secret_value()
        ):
            raise ValueError("events.webhook_urls needs events.webhook_secret (POSTs are signed)")
        if self.mqtt_url and not self.mqtt_url.startswith(("mqtt://", "mqtts://")):
            raise ValueError("events.mqtt_url must be mqtt://host:port or mqtts://host:port")
        return self


class PhotoSettings(BaseModel):
    # Stored photos (POST /api/photos) keep only boxes, qualities, embeddings and tags; with this
    # set, the image bytes too (sealed like embeddings when db.encryption_key is set).
    store_images: bool = False


class GallerySettings(BaseModel):
    # Keep each enrolled face's aligned chip (sealed like embeddings) so the gallery can be
    # re-embedded by another model; false: privacy mode, such faces need a new photo to migrate.
    keep_chips: bool = True
    # Faces re-embedded per batch (one transaction each) by a migration.
    migration_batch_size: int = Field(32, ge=1, le=1024)
    # A migration's worker renews its lease every batch; after this long without renewal (a
    # crashed process) another process or run takes the migration over.
    migration_lease_seconds: float = Field(30.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FACEREC_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    liveness: LivenessSettings = Field(default_factory=LivenessSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    streams: StreamSettings = Field(default_factory=StreamSettings)
    photos: PhotoSettings = Field(default_factory=PhotoSettings)
    gallery: GallerySettings = Field(default_factory=GallerySettings)
    # Shortcuts documented in the README: FACEREC_DATABASE_URL and FACEREC_REDIS_URL.
    database_url: str | None = None
    redis_url: str | None = None

    @field_validator("database_url", "redis_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    def model_post_init(self, __context: object) -> None:
        if self.database_url:
            self.db.url = self.database_url
        if self.redis_url:
            self.cache.redis_url = self.redis_url
