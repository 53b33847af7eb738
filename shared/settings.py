"""Configuration for both services, read once from the environment at each composition root.

Every variable is prefixed ``PODIUM_``. Defaults are the local, offline development stack that
``scripts/dev`` starts, secrets included; those secrets are public, so they are accepted only
when ``PODIUM_ENVIRONMENT=dev`` says so. Unset, the environment is ``prod``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.keyring import KeyRing

DEV_LIVEKIT_KEY = "devkey"
# scripts/dev starts livekit-server with this pair (HS256 wants a secret of 32+ bytes).
DEV_LIVEKIT_SECRET = "podium-dev-livekit-secret-not-for-production"
DEV_INTERNAL_SECRET = "podium-dev-internal-secret-change-me"
DEFAULT_AGENT_NAME = "podium-presenter"
# The web client's bundle as `scripts/bootstrap` builds it in a source checkout.
DEFAULT_WEB_DIST = Path(__file__).resolve().parents[1] / "web" / "dist"
DEV_OPS_TOKEN = "podium-dev-ops-token-change-me"
# livekit-server --dev signs with devkey/secret: as public as the placeholders above.
LIVEKIT_DEV_SECRET = "secret"
PUBLISHED_SECRETS = frozenset(
    {DEV_LIVEKIT_SECRET, LIVEKIT_DEV_SECRET, DEV_INTERNAL_SECRET, DEV_OPS_TOKEN}
)
# How deploy/k8s/overlays/prod/secrets.env.example's placeholders begin.
EXAMPLE_PLACEHOLDER = "CHANGE-ME"
MIN_SECRET_CHARS = 32

Environment = Literal["dev", "test", "prod"]


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PODIUM_", env_file=None, extra="ignore", hide_input_in_errors=True
    )

    environment: Environment = Field(
        default="prod",
        description="'dev' (the local stack: its public placeholder secrets are accepted, with a "
        "warning), 'test' (a shared test or staging deployment: real secrets, the demo page "
        "allowed) or 'prod'. Unset means prod.",
    )

    livekit_url: str = Field(
        default="ws://127.0.0.1:7880",
        description="LiveKit server URL as both services and clients reach it.",
    )
    livekit_api_key: str = DEV_LIVEKIT_KEY
    livekit_api_secret: SecretStr = SecretStr(DEV_LIVEKIT_SECRET)
    agent_name: str = Field(
        default=DEFAULT_AGENT_NAME,
        description="Name the worker registers under; sessions dispatch it explicitly.",
    )
    internal_secret: SecretStr = Field(
        default=SecretStr(DEV_INTERNAL_SECRET),
        description="Fallback of each PODIUM_*_KEYS key ring left unset (one secret for every "
        "purpose); set the key rings instead, so workers hold only the fleet keys.",
    )
    fleet_keys: SecretStr | None = Field(
        default=None,
        description="Key ring (comma-separated; the first signs, all verify) of the workers' "
        "fleet credentials: both services hold it. Unset: PODIUM_INTERNAL_SECRET.",
    )

    def _ring(self, name: str, value: SecretStr | None) -> tuple[str, KeyRing]:
        if value is None or not value.get_secret_value().strip():
            return "PODIUM_INTERNAL_SECRET", KeyRing([self.internal_secret.get_secret_value()])
        return name, KeyRing.parse(value.get_secret_value())

    def fleet_key_ring(self) -> KeyRing:
        return self._ring("PODIUM_FLEET_KEYS", self.fleet_keys)[1]

    def _rings(self) -> list[tuple[str, KeyRing]]:
        return [self._ring("PODIUM_FLEET_KEYS", self.fleet_keys)]

    def _secrets(self) -> dict[str, SecretStr]:
        secrets = {"PODIUM_LIVEKIT_API_SECRET": self.livekit_api_secret}
        for name, ring in self._rings():
            for n, key in enumerate(ring.keys, start=1):
                secrets[name if n == 1 else f"{name} (key {n})"] = SecretStr(key)
        return secrets

    def weak_secrets(self) -> list[str]:
        """Each secret that is a published placeholder or too short, and why."""
        problems = []
        for name, value in self._secrets().items():
            secret = value.get_secret_value()
            if secret in PUBLISHED_SECRETS or secret.startswith(EXAMPLE_PLACEHOLDER):
                problems.append(f"{name} is a published placeholder")
            elif len(secret) < MIN_SECRET_CHARS:
                problems.append(f"{name} is shorter than {MIN_SECRET_CHARS} characters")
        return problems

    @model_validator(mode="after")
    def _refuse_weak_secrets_unless_dev(self) -> _Base:
        # Anyone can sign room tokens, worker credentials or ops calls with a published secret:
        # only a deployment that says it is a developer's own stack may run with one.
        self._rings()  # a malformed key ring (an empty key) is refused in every environment
        problems = [] if self.environment == "dev" else self.weak_secrets()
        if problems:
            told = "environment" in self.model_fields_set
            where = f"={self.environment}" if told else " unset (which means prod)"
            raise ValueError(
                f"PODIUM_ENVIRONMENT{where} refuses public or short secrets: "
                f"{'; '.join(problems)}. Set real secrets ({MIN_SECRET_CHARS}+ random "
                "characters), or PODIUM_ENVIRONMENT=dev to run the local development stack with "
                "its placeholders."
            )
        return self


class ControlPlaneSettings(_Base):
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:54329/podium")
    redis_url: str = "redis://127.0.0.1:63799/0"
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL clients use to reach the control plane (join links).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port only, apart from the API (a NetworkPolicy can "
        "then keep it for Prometheus); unset: /metrics on the API port.",
    )
    web_concurrency: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Control-plane processes serving the API port (uvicorn workers), each with "
        "its own pools and background loops, as replicas have; about one per core. Above 1, "
        "/metrics answers one process's figures: scrape replicas of one process instead.",
    )
    db_pool_min: int = 2
    db_pool_max: int = 10
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    room_empty_timeout_seconds: int = Field(default=300, ge=10)
    worker_credential_ttl_seconds: int = Field(
        default=900,
        ge=60,
        le=86_400,
        description="Lifetime of a session credential; the job renews it while the session lives.",
    )
    session_credential_keys: SecretStr | None = Field(
        default=None,
        description="Key ring of the session credentials (control plane only). Unset: "
        "PODIUM_INTERNAL_SECRET.",
    )
    asset_url_keys: SecretStr | None = Field(
        default=None,
        description="Key ring of the signed asset URLs (control plane only). Unset: "
        "PODIUM_INTERNAL_SECRET.",
    )
    records_grace_seconds: float = Field(
        default=30,
        ge=0,
        le=600,
        description="An ended session takes its job's last records this long, or until the job "
        "says they are complete; then the internal write routes answer 409 session_ended.",
    )
    max_redispatches: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Times a session whose worker was lost is sent to another worker.",
    )
    job_silence_seconds: float = Field(
        default=6.0,
        ge=2.0,
        le=120.0,
        description="A presenting job silent this long is taken as lost (see liveness.py).",
    )
    apply_migrations_on_start: bool = True
    migrations_database_url: SecretStr | None = Field(
        default=None,
        description="The role that owns the schema, used only to apply migrations (at start and "
        "by `podium migrate`); unset: PODIUM_DATABASE_URL. The runtime role then needs no DDL.",
    )

    def migrations_dsn(self) -> str:
        url = self.migrations_database_url or self.database_url
        return url.get_secret_value()

    asset_root: Path = Field(
        default=Path(".state/assets"), description="Local asset storage (originals, previews)."
    )
    asset_url_ttl_seconds: int = Field(default=3600, ge=60)
    max_upload_mb: int = Field(default=50, ge=1, le=1024)
    max_slides: int = Field(default=300, ge=1, le=5000)
    parse_timeout_seconds: float = Field(default=120, gt=0)
    parse_memory_mb: int = Field(default=2048, ge=256)
    render_processes: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Child processes drawing one deck's slide previews between them (each "
        "bounded by parse_memory_mb); 1 draws them one after another.",
    )
    max_parallel_parses: int = Field(
        default=2, ge=1, le=64, description="Uploads checked at once; others wait up to 20 s."
    )

    # Request bodies: each route's cap is in control_plane/body_limit.py (the deck upload keeps
    # max_upload_mb, worker uploads what they need); every other route takes at most this.
    max_json_body_kb: int = Field(
        default=64,
        ge=1,
        le=16_384,
        description="Largest body of the JSON routes; bigger ones are refused (413) unread.",
    )
    upload_read_timeout_seconds: float = Field(
        default=120,
        gt=0,
        description="A deck upload holds a parse slot while its body arrives; this long at most.",
    )

    ingest_lease_seconds: float = Field(
        default=30, ge=1, description="A dead ingester's deck is retried after this long."
    )
    embedding_provider: Literal["local", "openai"] = Field(
        default="local",
        description="'local' (all-MiniLM-L6-v2 int8, offline) or 'openai' (needs an API key).",
    )
    embedding_threads: int = Field(
        default=1, ge=1, le=16, description="CPU threads of the local embedding model."
    )
    embedding_multilingual: bool = Field(
        default=True,
        description="With the local provider, index decks not in English with "
        "multilingual-e5-small (docs/languages.md); off: every deck with all-MiniLM-L6-v2.",
    )
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_embedding_model: str = "text-embedding-3-small"
    web_dist: Path = Field(
        default=DEFAULT_WEB_DIST,
        description="The built web client (join and demo pages); scripts/bootstrap builds it.",
    )
    demo_page: bool = Field(
        default=False,
        description="Serve the integrator demo page at /demo (development only; scripts/dev).",
    )

    # The fleet: GET /v1/fleet (ops token) and the desired worker count the autoscaler reads.
    # Defaults chosen with scripts/fleet-sim (docs/fleet.md).
    ops_token: SecretStr = Field(
        default=SecretStr(DEV_OPS_TOKEN),
        description="Bearer token of the ops routes (GET /v1/fleet); KEDA sends it.",
    )
    fleet_sessions_per_worker: int = Field(
        default=4, ge=1, description="Session slots per worker (match the workers' MAX_SESSIONS)."
    )
    fleet_headroom_sessions: int = Field(
        default=4, ge=0, description="Free session slots kept warm at any load."
    )
    fleet_headroom_ratio: float = Field(
        default=0.5, ge=0, le=10, description="Free slots kept as a share of active sessions."
    )
    fleet_min_workers: int = Field(default=1, ge=0)
    fleet_max_workers: int = Field(default=50, ge=1)
    fleet_heartbeat_ttl_seconds: float = Field(
        default=15, ge=1, description="A worker silent this long leaves the fleet view."
    )
    fleet_dispatch_window_seconds: float = Field(
        default=120,
        ge=5,
        description="A session created this recently and not yet on a worker counts as demand.",
    )
    metrics_refresh_seconds: float = Field(
        default=5, gt=0, description="How often fleet, session and deck gauges are refreshed."
    )
    # Scale-down picks the emptiest workers: the control plane sets each worker pod's
    # controller.kubernetes.io/pod-deletion-cost from its heartbeat (docs/fleet.md).
    fleet_deletion_cost: bool = Field(
        default=False,
        description="Annotate worker pods with their session count through the in-cluster API.",
    )
    fleet_deletion_cost_interval_seconds: float = Field(
        default=10, gt=0, description="How often worker pods' deletion costs are brought in line."
    )
    # Session lifecycle: the sweeper ends sessions nobody ends (reason recorded).
    session_max_duration_seconds: float = Field(
        default=4 * 3600, gt=0, description="A session still open this long after it began ends."
    )
    session_idle_timeout_seconds: float = Field(
        default=900,
        gt=0,
        description="An active session in which nobody (user or presenter) spoke for this long "
        "ends ('idle_timeout').",
    )
    session_no_show_seconds: float = Field(
        default=60,
        gt=0,
        description="The join window: a session nobody joined this long after creation ends "
        "('no_show') and its presenter's slot is freed.",
    )
    # Admission: POST /v1/sessions answers 201 only when a presenter's slot can be had.
    admission_enabled: bool = Field(
        default=True,
        description="Refuse new sessions (503 no_capacity) when the fleet has no free slot.",
    )
    admission_wait_seconds: float = Field(
        default=3,
        ge=0,
        le=30,
        description="How long a new session may wait for a slot to free up before 503.",
    )
    admission_reservation_seconds: float = Field(
        default=20,
        ge=2,
        le=300,
        description="A slot admitted to a session is held this long for a worker to take it.",
    )
    admission_fair_reserve_slots: int = Field(
        default=1,
        ge=0,
        description="The fleet's last free slots go only to tenants below their fair share.",
    )
    admission_stale_fleet_seconds: float = Field(
        default=300,
        ge=0,
        description="With Redis down, admit against the last fleet size seen this recently.",
    )
    dispatch_check_seconds: float = Field(
        default=2,
        gt=0,
        le=60,
        description="How often sessions still waiting for their presenter are checked, and "
        "dispatched again when livekit-server dropped their dispatch.",
    )
    dispatch_mode: Literal["on_create", "on_join"] = Field(
        default="on_create",
        description="Dispatch the presenter when the session is created, or when its first "
        "participant joins (LiveKit's participant_joined webhook).",
    )
    lifecycle_sweep_seconds: float = Field(
        default=10, gt=0, description="How often the lifecycle sweeper looks for such sessions."
    )
    # Integrator webhooks (signed, retried from the durable outbox).
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    webhook_retry_base_seconds: float = Field(
        default=5, gt=0, description="First retry delay; doubles each attempt, up to the max."
    )
    webhook_retry_max_seconds: float = Field(default=3600, gt=0)
    webhook_timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=60,
        description="Deadline of one whole attempt: lookup, connect, TLS, request and answer.",
    )
    webhook_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often the sender looks for due deliveries."
    )
    webhook_allow_private_urls: bool | None = Field(
        default=None,
        description="Allow endpoints on loopback/private/link-local addresses (never the cloud "
        "metadata ones); default: only in dev.",
    )

    # --- Per-tenant limit defaults (control_plane.limits) -------------------------------------
    # A tenant without its own value (`podium admin limits TENANT --set ...`) gets these.
    limit_concurrent_sessions: int = Field(
        default=20, ge=1, le=10_000, description="Sessions not ended at once (session admission)."
    )
    limit_sessions_per_minute: int = Field(
        default=60, ge=1, le=10_000, description="POST /v1/sessions per minute."
    )
    limit_uploads_in_flight: int = Field(
        default=5, ge=1, le=10_000, description="Decks being checked or ingested at once."
    )
    limit_uploads_per_hour: int = Field(
        default=60, ge=1, le=10_000, description="POST /v1/decks per hour."
    )
    limit_searches_per_second: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="Deck searches per second (an evaluation counts one per question); the "
        "presenter's searches are counted per session.",
    )
    limit_slide_changes_per_second: int = Field(
        default=10, ge=1, le=10_000, description="Slide changes per second, per session."
    )
    limit_webhook_endpoints: int = Field(
        default=10, ge=1, le=10_000, description="Registered webhook endpoints."
    )

    # --- Data handling (control_plane.privacy): per-tenant policy defaults --------------------
    # A tenant without its own value (`PUT /v1/tenant/data-policy`, `podium admin data-policy`)
    # gets these. Retention counts days after the session ended (decks: after upload); unset
    # (None) keeps that kind of record until it is deleted.
    redaction_default: Literal["off", "mask", "drop"] = Field(
        default="off",
        description="PII redaction before anything is stored or sent: 'off', 'mask' (each "
        "finding replaced by its type, e.g. [PHONE]) or 'drop' (a text holding any is removed).",
    )
    retention_transcripts_days: int | None = Field(default=365, ge=0, le=36_500)
    retention_turns_days: int | None = Field(default=90, ge=0, le=36_500)
    retention_recordings_days: int | None = Field(default=90, ge=0, le=36_500)
    retention_events_days: int | None = Field(default=365, ge=0, le=36_500)
    retention_decks_days: int | None = Field(default=None, ge=0, le=36_500)
    retention_sweep_seconds: float = Field(
        default=3600, gt=0, description="How often the retention sweeper deletes expired records."
    )

    def session_credential_key_ring(self) -> KeyRing:
        return self._ring("PODIUM_SESSION_CREDENTIAL_KEYS", self.session_credential_keys)[1]

    def asset_url_key_ring(self) -> KeyRing:
        return self._ring("PODIUM_ASSET_URL_KEYS", self.asset_url_keys)[1]

    def _rings(self) -> list[tuple[str, KeyRing]]:
        return [
            *super()._rings(),
            self._ring("PODIUM_SESSION_CREDENTIAL_KEYS", self.session_credential_keys),
            self._ring("PODIUM_ASSET_URL_KEYS", self.asset_url_keys),
        ]

    def _secrets(self) -> dict[str, SecretStr]:
        return {**super()._secrets(), "PODIUM_OPS_TOKEN": self.ops_token}

    @model_validator(mode="after")
    def _openai_needs_a_key(self) -> ControlPlaneSettings:
        if self.embedding_provider == "openai" and self.openai_api_key is None:
            raise ValueError("PODIUM_EMBEDDING_PROVIDER=openai needs PODIUM_OPENAI_API_KEY")
        return self

    @model_validator(mode="after")
    def _no_demo_page_in_prod(self) -> ControlPlaneSettings:
        # The demo page asks for a tenant API key in the browser: fine on a laptop, not in prod.
        if self.environment == "prod" and self.demo_page:
            raise ValueError(
                "PODIUM_DEMO_PAGE is for development; unset it when PODIUM_ENVIRONMENT=prod"
            )
        return self

    @model_validator(mode="after")
    def _fleet_bounds(self) -> ControlPlaneSettings:
        if self.fleet_min_workers > self.fleet_max_workers:
            raise ValueError("PODIUM_FLEET_MIN_WORKERS must not exceed PODIUM_FLEET_MAX_WORKERS")
        return self


class WorkerSettings(_Base):
    control_plane_url: str = "http://127.0.0.1:8000"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, description="Health endpoint of the agent server.")
    num_idle_processes: int = Field(default=1, ge=0, description="Prewarmed job processes.")
    job_heartbeat_seconds: float = Field(
        default=2.0, gt=0.1, le=30.0, description="How often a presenting job reports it lives."
    )
    recording_segment_seconds: float = Field(
        default=60.0,
        ge=1.0,
        le=120.0,
        description="Length of each uploaded recording segment; a killed job loses at most one.",
    )
    turn_detection: Literal["model", "vad"] = Field(
        default="vad",
        description="'vad': silence ends the turn (answers sooner, may cut a long pause); "
        "'model': the framework's local turn-detector model judges it, waiting up to the "
        "max endpointing delay when the turn sounds unfinished.",
    )
    endpointing_min_delay_seconds: float = Field(
        default=0.3, ge=0.0, le=5.0, description="Wait after speech when the turn looks done."
    )
    endpointing_max_delay_seconds: float = Field(
        default=1.5, ge=0.1, le=10.0, description="Longest wait when it looks unfinished."
    )
    interruption_min_seconds: float = Field(
        default=0.4, ge=0.05, le=5.0, description="Speech that interrupts the agent (barge-in)."
    )
    stt_preflight: bool = Field(
        default=True,
        description="Local Whisper: send the transcript guessed during the end-of-turn silence "
        "as a preflight, so the reply is prepared before the turn ends (the offline responder's "
        "answer is rehearsed then). With a cloud LLM, a guess the user talks on past costs one "
        "discarded request (at most three a turn).",
    )
    vad_min_silence_seconds: float = Field(
        default=0.35,
        ge=0.1,
        le=2.0,
        description="Silence that ends the user's turn (shorter answers sooner, may cut pauses).",
    )
    drain_timeout_seconds: int = Field(default=1800, ge=1)
    max_sessions: int = Field(
        default=4,
        ge=1,
        description="Concurrent sessions per worker; LiveKit sends no more jobs past it.",
    )
    tts_voice: str = Field(
        default="piper:joe",
        description="Offline TTS: 'piper:joe' (child process) or 'espeak' (fallback).",
    )
    request_timeout_seconds: float = 5.0
    worker_name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="Name in heartbeats and /v1/fleet; default host:pid (the pod name in k8s).",
    )
    ops_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of /readyz (503 while draining) and /metrics; unset turns them off.",
    )
    heartbeat_interval_seconds: float = Field(
        default=5, gt=0, le=60, description="How often the worker reports to the control plane."
    )

    avatar_provider: Literal["local", "none", "tavus", "liveavatar", "simli", "bey", "anam"] = (
        Field(
            default="local",
            description="'local' draws the presenter in the worker (offline, free); a vendor "
            "name uses its LiveKit plugin (see docs/avatar-vendors.md) and falls back to 'local' "
            "when it fails; 'none' is audio-only.",
        )
    )
    avatar_width: int = Field(default=640, ge=320, le=1920, description="Local avatar video.")
    avatar_height: int = Field(default=360, ge=180, le=1080)
    avatar_fps: float = Field(default=25.0, ge=10.0, le=30.0)

    # Providers per stage: "local" runs offline; a cloud provider needs its key, and its stage
    # keeps the local engine behind it as the fallback.
    stt_provider: Literal["local", "deepgram", "openai"] = Field(
        default="local", description="Speech-to-text: 'local' (Whisper), 'deepgram' or 'openai'."
    )
    llm_provider: Literal["local", "openai"] = Field(
        default="local",
        description="'local' (the offline deck responder) or 'openai' (any compatible base URL).",
    )
    tts_provider: Literal["local", "elevenlabs", "openai"] = Field(
        default="local",
        description="Text-to-speech: 'local' (Piper/espeak), 'elevenlabs', 'openai'.",
    )
    openai_api_key: SecretStr | None = None
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="Also how Ollama or vLLM are used: their OpenAI-compatible /v1 URL.",
    )
    openai_llm_model: str = "gpt-4o-mini"
    openai_stt_model: str = "gpt-4o-mini-transcribe"
    openai_tts_model: str = "gpt-4o-mini-tts"
    openai_tts_voice: str = "ash"
    deepgram_api_key: SecretStr | None = None
    deepgram_base_url: str = "https://api.deepgram.com/v1/listen"
    deepgram_model: str = "nova-3"
    elevenlabs_api_key: SecretStr | None = None
    elevenlabs_base_url: str = "https://api.elevenlabs.io/v1"
    elevenlabs_model: str = "eleven_turbo_v2_5"
    elevenlabs_voice_id: str = Field(
        default="hpp4J3VqNfWAUOO0d1Us", description="The plugin's default voice."
    )
    provider_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a cloud LLM attempt may take before fallback."
    )

    @model_validator(mode="after")
    def _cloud_providers_need_keys(self) -> WorkerSettings:
        needs = {
            "PODIUM_OPENAI_API_KEY": (
                self.openai_api_key,
                [
                    f"PODIUM_{stage}_PROVIDER=openai"
                    for stage, chosen in (
                        ("STT", self.stt_provider),
                        ("LLM", self.llm_provider),
                        ("TTS", self.tts_provider),
                    )
                    if chosen == "openai"
                ],
            ),
            "PODIUM_DEEPGRAM_API_KEY": (
                self.deepgram_api_key,
                ["PODIUM_STT_PROVIDER=deepgram"] if self.stt_provider == "deepgram" else [],
            ),
            "PODIUM_ELEVENLABS_API_KEY": (
                self.elevenlabs_api_key,
                ["PODIUM_TTS_PROVIDER=elevenlabs"] if self.tts_provider == "elevenlabs" else [],
            ),
        }
        missing = [
            f"{', '.join(users)} needs {key}"
            for key, (value, users) in needs.items()
            if users and (value is None or not value.get_secret_value())
        ]
        if missing:
            raise ValueError("; ".join(missing))
        return self
