"""One configuration model for every skyqa command: YAML file (SKYQA_CONFIG or --config), then env vars.

Env vars use the prefix SKYQA_ and `__` between levels, e.g. SKYQA_KAFKA__BOOTSTRAP_SERVERS=broker:9092.
Precedence: explicit arguments > environment > file > defaults.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from skyqa import shipped_models
from skyqa.service.pipeline.background_check import BackgroundCheckConfig
from skyqa.service.pipeline.budgets import Budgets

CONFIG_ENV = "SKYQA_CONFIG"
DATA_DIR = Path(os.environ.get("SKYQA_DATA_DIR", Path.home() / ".local" / "share" / "skyqa"))


class DetectionConfig(BaseModel):
    """sep settings matching the reference SExtractor run (method.md, Preprocessing step 2)."""

    thresh_sigma: float = 2.0
    minarea: int = 5
    back_size: int = 64
    back_filtersize: int = 3
    deblend_nthresh: int = 32
    deblend_cont: float = 0.0
    clean: bool = True
    filter_fwhm_px: float = 3.0
    filter_size: int = 7
    # Rows of each CCD searched for sources. The CCD is cut into bands of ~band_rows rows, searched one after
    # another in a spread order seeded by (seed, exposure id, EXTNAME) (`skyqa.service.pipeline.bands`), and the
    # search stops once it has found `enough_sources` sources a cutout can be taken around in at least
    # `min_bands` bands: the verdict needs ~cutouts.per_ccd cutouts per CCD and a W estimate, not every source.
    # A CCD too sparse for that is searched in every row. W is scaled by the inverse searched fraction.
    # enough_sources None (with max_searched_rows None) is the reference behaviour: every row searched.
    # Chosen from verdict agreement with every row over simulated nights (`make bench-agreement`, README):
    # 150 sources from one band or more (1.5 x cutouts.per_ccd) kept every label on full-height CCDs at ~1/3
    # of the CPU; 300 from two bands or more did no better.
    band_rows: int = Field(256, ge=64)
    # Rows of each CCD searched first (from the first band in spread order): enough on a crowded CCD; elsewhere the
    # next search takes the rows still needed at the density seen. None: whole bands. 96 against whole 256-row
    # bands (full exposures, rows searched a CCD): crowded 297 -> 137, ordinary 297-323 -> 262-432 (more reads);
    # labels unchanged on both full-height bench-agreement nights (own and unseen site, 24 exposures each), where
    # whole bands changed 2 of the unseen site's 24. 128, or going on in the rows below instead of a next band in
    # spread order, changed one label there.
    first_rows: int | None = Field(96, ge=32)
    # Rows searched beyond a band on each side, so that sources centred in it are detected whole (their cutouts come
    # from the rows read, which always hold half a cutout more). 10 against 21 (half a cutout + the border margin):
    # -11% CPU on full ordinary exposures; over 96 full-height exposures of four bench-agreement nights, labels as
    # every row 93.8% against 95.8% (every row with another cutout seed: 94.8%), W +0.6%.
    edge_rows: int = Field(10, ge=4)
    min_bands: int = Field(1, ge=1)
    enough_sources: int | None = Field(150, ge=1)
    max_searched_rows: int | None = Field(None, ge=64, description="stop there even when short of sources")


class CutoutConfig(BaseModel):
    size: int = 32
    border_margin: int = 5
    per_ccd: int = 100
    clip_percentiles: tuple[float, float] = (1.0, 95.0)


class ModelsConfig(BaseModel):
    repository: Path = Field(default_factory=shipped_models)
    desom1: str = "desom1"
    desom2: str = "desom2"
    # "latest" = highest numbered version directory
    desom1_version: str = "latest"
    desom2_version: str = "latest"


class InferenceConfig(BaseModel):
    mode: Literal["local", "triton"] = "local"
    triton_url: str = "localhost:8001"
    protocol: Literal["grpc", "http"] = "grpc"
    timeout_s: float = 30.0
    batch_size: int = 512
    # onnxruntime threads for in-process DESOM. One: DESOM-1 runs beside the preprocessing workers, which hold the
    # cores; a second thread there cost more than it bought (3,600 cutouts on idle cores: 0.90 CPU-s with one
    # thread, 1.45 with two; full ordinary exposures, 2 workers: p50 4.03-4.33 CPU-s against 4.42-4.49).
    threads: int = 1
    # DESOM-1 from the version's model.int8.onnx (static int8, skyqa.training.quantize) instead of model.onnx, in
    # local mode: 0.55 instead of 0.86 CPU-s per 3,600 cutouts on one thread (stop 18); labels as fp32 on 58 of 60
    # exposures of each small night on a CPU without VNNI (README, issue 11). A Triton server serves the file its
    # config.pbtxt names (`default_model_filename`), so "triton" takes only "fp32".
    desom1_precision: Literal["fp32", "int8"] = "fp32"


class KafkaConfig(BaseModel):
    bootstrap_servers: str = "localhost:9092"
    events_topic: str = "skyqa.exposures"
    verdicts_topic: str = "skyqa.verdicts"
    deadletter_topic: str = "skyqa.deadletter"
    group_id: str = "skyqa"
    transactional_id: str | None = Field(None, description="defaults to '<group_id>-<hostname>'; must be stable per replica")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    poll_timeout_s: float = 1.0


class FetchConfig(BaseModel):
    allowed_roots: list[Path] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    max_bytes: int = 2 * 1024**3
    timeout_s: float = 60.0
    attempts: int = 5
    spool_dir: Path = Path("/tmp/skyqa-spool")


class ServeConfig(BaseModel):
    source: Literal["kafka", "dir"] = "kafka"
    watch_dir: Path = Path("incoming")
    watch_interval_s: float = 2.0
    # An unexpected exception while processing one event's file is retried this many times in all, then the
    # event is dead-lettered as processing_error (a dependency being down is retried without limit).
    max_processing_attempts: int = Field(3, ge=1)
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    # Between exposures, look for a newly published model version at most this often (seconds; 0 = before every
    # exposure, None = only on SIGHUP). Only "latest" (models.*_version) can move; a pinned version never does.
    model_reload_interval_s: float | None = Field(30.0, ge=0.0)


class SiteConfig(BaseModel):
    """Where the telescope is: the observing night is the local date at the site (CFHT, Maunakea: UTC-10)."""

    utc_offset_hours: float = Field(-10.0, ge=-14.0, le=14.0)


class ArchiveConfig(BaseModel):
    """The verdict archive: an SQLAlchemy URL, sqlite:///<file> (embedded) or postgresql+psycopg://... (production)."""

    url: str = Field(default_factory=lambda: f"sqlite:///{DATA_DIR / 'archive.db'}")
    consumer_group: str = "skyqa-archive"
    batch_size: int = Field(200, ge=1, le=10_000)
    http_port: int = 8081


class PreviewConfig(BaseModel):
    """Focal-plane previews written while each exposure is classified (skyqa.service.previews), for the web pages."""

    enabled: bool = True
    location: Path = Field(default_factory=lambda: DATA_DIR / "previews")
    max_side: int = Field(1024, ge=64, le=8192, description="pixels on the focal plane's longer side, at most")
    max_bytes: int = Field(300_000, ge=10_000, description="encoded size cap: lower quality, then smaller")
    format: Literal["webp", "png"] = "webp"
    quality: int = Field(80, ge=10, le=100, description="WebP quality")


class WebConfig(BaseModel):
    """`skyqa web`: viewing is open; curating and publishing need a login from `users` (argon2 hashes made by
    `skyqa web --hash-password`) or, behind a reverse proxy that authenticates, the user it names in
    `trusted_user_header` (set it only when nothing but that proxy can reach the app)."""

    session_secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
                                      description="signs session cookies; set it when running several replicas")
    users: dict[str, str] = Field(default_factory=dict, description="user name -> argon2 password hash")
    trusted_user_header: str | None = None
    https_only: bool = Field(False, description="session cookie only over HTTPS (set behind a TLS ingress)")
    live_poll_s: float = Field(1.0, gt=0.0, le=60.0, description="how often an open night page asks for news")


class Settings(BaseSettings):
    # env_parse_none_str: SKYQA_DETECTION__ENOUGH_SOURCES=null selects the every-row reference from the environment
    model_config = SettingsConfigDict(env_prefix="SKYQA_", env_nested_delimiter="__", extra="forbid",
                                      env_parse_none_str="null")

    log_level: str = "INFO"
    workers: int = Field(2, ge=1, description="processes reading and detecting CCDs in parallel")
    seed: int = 0
    detection: DetectionConfig = DetectionConfig()
    cutouts: CutoutConfig = CutoutConfig()
    background_check: BackgroundCheckConfig = BackgroundCheckConfig()
    limits: Budgets = Budgets()
    models: ModelsConfig = ModelsConfig()
    inference: InferenceConfig = InferenceConfig()
    kafka: KafkaConfig = KafkaConfig()
    fetch: FetchConfig = FetchConfig()
    serve: ServeConfig = ServeConfig()
    site: SiteConfig = SiteConfig()
    archive: ArchiveConfig = ArchiveConfig()
    previews: PreviewConfig = PreviewConfig()
    web: WebConfig = WebConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, file_secret_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{CONFIG_ENV}={path}: no such config file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Settings from `config_file` (or $SKYQA_CONFIG) and the environment, with keyword overrides on top."""
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file)
    return Settings(**overrides)
