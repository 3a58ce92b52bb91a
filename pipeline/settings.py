"""The one typed settings object: every ``YUQING_*`` environment variable is declared here, once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.model_paths import BASELINE_MODEL, STUDENT_MODEL, TEACHER_MODEL

__all__ = ["BASELINE_MODEL", "STUDENT_MODEL", "TEACHER_MODEL", "Settings", "get_settings", "settings_env"]


class Settings(BaseSettings):
    """Configuration of every yuqing process, read from ``YUQING_<FIELD>`` variables."""

    model_config = SettingsConfigDict(env_prefix="YUQING_", frozen=True, extra="ignore", env_parse_none_str="null")

    # Kafka
    broker: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    topic_raw: str = Field("posts.raw", description="Topic of validated incoming posts.")
    topic_scored: str = Field("posts.scored", description="Topic of scored posts.")
    topic_dlq: str = Field("posts.dlq", description="Dead-letter topic: rejected records with their reason.")
    topic_alerts: str = Field("alerts", description="Topic of alerts.")
    partitions: int = Field(4, ge=1, description="Partitions per topic when yuqing creates its topics.")
    topic_replication_factor: int = Field(
        1, ge=1, description="Replicas of each topic yuqing creates: 1 for one local broker, 3 in production."
    )
    topic_min_insync_replicas: int = Field(
        1, ge=1, description="Replicas that must hold a write before it counts (acks=all): 2 in production."
    )
    worker_group: str = Field("yuqing", description="faust application id, hence the consumer group.")
    worker_agents: Literal["all", "score", "aggregate"] = Field(
        "all",
        description="The agents this worker runs: both, or one of them, so that scoring (a GPU) and storing "
        "scale apart and each has a process's GIL. A split worker joins its agent's own group "
        "(worker_group-score, worker_group-aggregate): run every worker of a deployment one way or the other.",
    )
    author_key: SecretStr = Field(
        SecretStr(""),
        description="When set, author ids are replaced by a keyed hash (HMAC-SHA256) before Kafka, at ingest and "
        "in the worker for posts other producers wrote: nothing downstream stores a real author id.",
    )
    ingest_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Longest ingest waits on the broker before it answers 503 (a client retries)."
    )

    # Redis (live store)
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL (may hold a password).")
    redis_prefix: str = Field("yq", description="Prefix of every Redis key, so several deployments share a Redis.")
    live_retention_s: int = Field(25 * 3600, ge=3600, description="How long live minute buckets live in Redis.")
    dedup_marker_ttl_s: int = Field(
        25 * 3600, ge=60, description="How long Redis remembers a counted post id, so a replay is not recounted."
    )

    # ClickHouse (history store)
    clickhouse_url: SecretStr = Field(
        SecretStr("chdb://.yuqing/chdb"),
        description="clickhouse://user:pass@host:9000/db for a server, or chdb://PATH for the in-process engine.",
    )
    personal_data_retention_days: int = Field(
        90,
        ge=0,
        le=36_500,
        description="Days after a post's event time that ClickHouse keeps its text, author id and URL (counts, "
        "sentiment and subjects stay); 0 keeps them. Needs ClickHouse 19.6 or newer.",
    )

    # Workers
    batch_max_items: int = Field(256, ge=1, description="Most posts in one micro-batch.")
    batch_max_wait_s: float = Field(0.5, gt=0, description="Longest wait to fill a micro-batch, in seconds.")
    batch_max_tokens: int = Field(
        0,
        ge=0,
        description="Most model tokens (estimated) in one model call; 0: 4,096 for a Transformer on a CPU, "
        "else 32,768.",
    )
    fetch_max_wait_s: float = Field(
        0.1,
        gt=0,
        le=1.5,
        description="Longest a worker's fetch waits on the broker for records. Kafka answers as soon as records "
        "arrive; a broker without long polling (tansu, in tests and the demo) holds each fetch this long, so "
        "faust's fixed 1.5 s would add up to 1.5 s of latency on each topic a post passes.",
    )
    history_insert_min_posts: int = Field(
        1_000,
        ge=1,
        description="ClickHouse inserts wait for this many posts (a few micro-batches) or for "
        "YUQING_HISTORY_INSERT_MAX_WAIT_S, as ClickHouse asks: each insert makes a part to merge. Redis, the live "
        "path, stores each micro-batch at once; offsets follow the insert.",
    )
    history_insert_max_wait_s: float = Field(
        1.0, ge=0, le=10, description="Longest a micro-batch waits for others to share its ClickHouse insert."
    )
    worker_stop_grace_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="Longest a worker takes to stop after SIGTERM. A batch still unstored then (a store is away) "
        "is not acked: the worker exits with code 70 and the batch is replayed by the partition's next owner.",
    )
    text_max_chars: int = Field(5_000, ge=16, description="Longer texts are cut to this many characters and flagged.")
    model_path: Path = Field(STUDENT_MODEL, description="Folder of the sentiment model to serve.")
    scorer_threads: int = Field(1, ge=1, description="Threads that run the model off the event loop.")
    score_batches_in_flight: int = Field(
        4,
        ge=1,
        le=16,
        description="Micro-batches the score agent works on at once: one analysed (text) while one is judged "
        "(noise), one scored and one delivered; 1 takes them one by one. Offsets are still committed only "
        "after delivery, in order.",
    )
    text_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Processes that clean, segment and sign (noise) posts for the score agent, so several "
        "cores feed one model (a GPU); 0: a thread of the worker process.",
    )
    worker_http_host: str = Field(
        "127.0.0.1", description="Address of the worker's HTTP port; 0.0.0.0 where probes and Prometheus reach it."
    )
    worker_http_port: int = Field(
        8600,
        ge=0,
        le=65535,
        description="Worker HTTP port: /metrics (Prometheus), /healthz (alive), /readyz (ready to work); 0: off. "
        "No token: it serves counts and timings, never posts. A port already taken is logged and skipped.",
    )

    # Subjects, text and noise
    subjects_file: Path | None = Field(
        None, description="YAML/JSON subject set that seeds an empty subject store (Redis) at worker start."
    )
    subjects_reload_s: float = Field(2.0, gt=0, description="How often workers check the subject store for changes.")
    terms_per_post: int = Field(24, ge=0, description="Most hot-word terms kept per post.")
    noise_window_s: float = Field(1800.0, gt=0, description="How far back (event time) near-duplicates are looked for.")
    noise_state: Literal["redis", "memory"] = Field(
        "redis",
        description="Where the noise filter's state lives: redis (one state for every worker, so duplicates "
        "and floods are judged alike whatever the number of workers) or memory (each worker judges its own "
        "partitions' share of the stream).",
    )
    noise_max_entries: int = Field(
        50_000,
        ge=100,
        description="Most posts the near-duplicate index holds (in Redis: in all, about 1.5 KB each; in memory: "
        "per worker, about 4 KB each); as many clusters and authors again. Above about this many distinct "
        "posts per noise_window_s, it rather than the window sets how far back a copy is recognised.",
    )
    noise_similarity: float = Field(0.6, gt=0, le=1, description="Estimated Jaccard similarity that makes a copy.")
    noise_flood_min_authors: int = Field(8, ge=2, description="Authors of one text within 2 min that make a flood.")
    noise_burst_max_posts: int = Field(20, ge=2, description="Posts per minute above which an author is in a burst.")

    # Alerts
    alerts_enabled: bool = Field(True, description="Run the detectors (in the leader worker of the group).")
    alerts_interval_s: float = Field(5.0, gt=0, description="How often the detectors look at the live minute.")
    alerts_config_file: Path | None = Field(None, description="YAML/JSON detector thresholds, per subject too.")
    alert_webhooks: str = Field("", description="Webhook URLs that get every alert event, comma separated.")
    alert_webhook_secret: SecretStr = Field(SecretStr(""), description="HMAC-SHA256 key that signs webhook bodies.")
    detection_future_tolerance_s: float = Field(
        120.0, ge=0, description="Posts stamped further ahead than this are left out of detection and live counts."
    )
    detection_max_lateness_s: float = Field(
        900.0, gt=0, description="Posts arriving later than this after their event time are left out of detection."
    )

    # Model runtime (Transformer models; the baseline ignores these)
    device: str = Field(
        "auto", description="Where the model runs: auto (cuda if torch sees a GPU, else cpu), cpu, cuda:N."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto",
        description="auto: bf16 on a GPU that has it, else fp16; on a CPU bf16 where native (AMX, AVX-512 BF16), "
        "else fp32. int8: dynamic quantisation, CPU only.",
    )
    torch_threads: int = Field(0, ge=0, description="CPU threads torch may use (0 = torch's default).")
    model_labels: str = Field(
        "", description="Sentiment per class index, comma separated, for a model folder whose config says LABEL_0…"
    )

    # API
    api_host: str = Field("127.0.0.1", description="Address `yuqing api` listens on.")
    api_port: int = Field(8300, ge=0, le=65535, description="Port `yuqing api` listens on (0: any free port).")
    api_tokens: SecretStr = Field(
        SecretStr(""),
        description="API tokens as comma-separated token:scope pairs, scope read or admin. Empty: anyone may "
        "read without a token and nobody may change anything (the local demo).",
    )
    api_anonymous_read: bool = Field(
        False,
        description="Let anyone read without a token when the API listens beyond loopback (with no tokens "
        "configured it refuses to, unless this is set).",
    )
    ingest_tokens: SecretStr = Field(
        SecretStr(""),
        description="Tokens (comma separated, 16+ characters) that may POST /posts: `Authorization: Bearer`. "
        "Required when ingest listens beyond loopback.",
    )
    api_cors_origins: str = Field("", description="Origins allowed cross-site (CORS), comma separated; empty: none.")
    dashboard_url: str = Field("http://127.0.0.1:8300", description="Public base URL of the dashboard (alert links).")

    # Logging
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text: lines for a person; json: one JSON object per line (time, level, logger, message, "
        "post ids and other fields) for a log collector. Known secrets are redacted from both.",
    )

    # Fault injection for the crash tests: exit hard after this many sink flushes, before the commit.
    test_crash_after_flushes: int = Field(0, ge=0, description="Test only: crash after N flushes (0 = never).")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.dedup_marker_ttl_s < self.live_retention_s:
            # A replay of a post whose marker expired before its minute would count it twice.
            raise ValueError(
                f"dedup_marker_ttl_s ({self.dedup_marker_ttl_s}) must be at least live_retention_s "
                f"({self.live_retention_s}): a replayed post would be counted twice"
            )
        if self.alert_webhooks.strip() and not self.alert_webhook_secret.get_secret_value():
            raise ValueError("alert_webhooks are set but alert_webhook_secret is empty: anyone could forge an alert")
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"topic_min_insync_replicas ({self.topic_min_insync_replicas}) exceeds topic_replication_factor "
                f"({self.topic_replication_factor}): no write could ever succeed"
            )
        return self


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these same settings."""
    env = {}
    for name, value in settings.model_dump().items():
        plain = value.get_secret_value() if isinstance(value, SecretStr) else value
        env[f"YUQING_{name.upper()}"] = "null" if plain is None else str(plain)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
