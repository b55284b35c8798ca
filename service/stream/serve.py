"""`skyqa serve`: wire settings, classifier, source, sink, health server and signals; run until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from kafka.errors import KafkaError

from skyqa.service.config import Settings
from skyqa.service.stream.events import EventError, decode_event
from skyqa.service.stream.fetch import Fetcher
from skyqa.service.stream.health import Health, HealthServer, tcp_reachable
from skyqa.service.stream.kafka_io import MAX_POLL_INTERVAL_MS, CommitOffsets, Produce, TransactionalPublisher, make_consumer
from skyqa.service.stream.kafka_loop import KafkaLoop
from skyqa.service.stream.metrics import expose_label_series
from skyqa.service.stream.observe import Observe
from skyqa.service.stream.reload import ReloadingClassifier
from skyqa.service.stream.steps import chain

log = structlog.get_logger("skyqa.stream")


def serve(settings: Settings, stop: threading.Event | None = None) -> int:
    """Exit status: 0 after SIGTERM/SIGINT (exposure in flight finished and committed), 75 when fenced,
    78 (EX_CONFIG) when the directory source cannot write its outbox."""
    from skyqa.service.pipeline.classify import Classifier  # loads the models: inside, so importing this module stays cheap

    stop = stop or threading.Event()
    _stop_on_signals(stop)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python narrates every (re)connection at INFO
    classifier = ReloadingClassifier(settings, Classifier)
    if threading.current_thread() is threading.main_thread():  # SIGHUP: look for a new model version now
        signal.signal(signal.SIGHUP, lambda _signum, _frame: classifier.request())
    expose_label_series()
    checks = {"inference": classifier.ready}
    if settings.serve.source == "kafka":
        checks["broker"] = tcp_reachable(settings.kafka.bootstrap_servers)
    health = Health(checks, stuck_after_s=MAX_POLL_INTERVAL_MS / 1000 + 60)
    server = HealthServer(health, settings.serve.http_host, settings.serve.http_port).start()
    log.info("serving", source=settings.serve.source, inference=settings.inference.mode,
             models=classifier.versions.model_dump(), http=f"{settings.serve.http_host}:{server.port}")
    try:
        if settings.serve.source == "kafka":
            return _serve_kafka(settings, classifier, health, stop)
        return _serve_dir(settings, classifier, health, stop)
    finally:
        server.stop()
        classifier.close()
        log.info("stopped")


def _serve_kafka(settings: Settings, classifier: ReloadingClassifier, health: Health, stop: threading.Event) -> int:
    cfg = settings.kafka
    consumer = make_consumer(cfg)
    publisher = TransactionalPublisher(cfg)
    try:
        publisher.start()  # fence a zombie of this replica before consuming anything
    except KafkaError as err:  # broker not there yet: the first event retries it
        log.warning("producer_init_deferred", error=repr(err))
    sink = Produce(publisher, CommitOffsets(publisher, consumer, Observe()))
    fetcher = Fetcher(settings.fetch)
    loop = KafkaLoop(consumer, publisher, chain(fetcher, classifier, sink, settings.serve.max_processing_attempts),
                     stop, heartbeat=health.beat, poll_timeout_s=cfg.poll_timeout_s,
                     upcoming=announce_event(fetcher, classifier))
    try:
        return loop.run()
    finally:
        publisher.close()
        consumer.close(autocommit=False)


def announce_event(fetcher: Fetcher, classifier: ReloadingClassifier) -> Callable[[bytes], None]:
    """The Kafka loop's `upcoming`: an event whose file the chain's Fetch would hand over in place is announced to
    the classifier (its CCDs start early); a download, or an event the chain will reject, is not."""

    def upcoming(raw: bytes) -> None:
        try:
            checked = fetcher.local_uri(decode_event(raw).uri)
        except EventError:  # the chain rejects it in its turn
            return
        if checked is not None:
            classifier.expect(checked)

    return upcoming


def _serve_dir(settings: Settings, classifier: ReloadingClassifier, health: Health, stop: threading.Event) -> int:
    from skyqa.service.archive.store import Archive
    from skyqa.service.stream.archive_sink import ArchiveOutcomes
    from skyqa.service.stream.dir_source import DirSource, DirState, WriteFiles

    watch_dir = settings.serve.watch_dir.resolve()
    try:  # verdicts/, rejected/ and the ledger live in the watched directory: it must be writable
        watch_dir.mkdir(parents=True, exist_ok=True)
        state = DirState(watch_dir)
    except OSError as exc:
        log.error("watch_dir_not_writable", watch_dir=str(watch_dir), error=f"{type(exc).__name__}: {exc}")
        return 78
    fetch_cfg = settings.fetch.model_copy(update={"allowed_roots": [*settings.fetch.allowed_roots, watch_dir]})
    sink = ArchiveOutcomes(Archive(settings.archive.url), WriteFiles(state, Observe()))
    fetcher = Fetcher(fetch_cfg)

    def upcoming(path: Path) -> None:  # only a file the chain's Fetch would accept is read ahead of its turn
        if (checked := fetcher.local_file(path)) is not None:
            classifier.expect(checked)

    source = DirSource(watch_dir, settings.serve.watch_interval_s,
                       chain(fetcher, classifier, sink, settings.serve.max_processing_attempts), stop,
                       heartbeat=health.beat, upcoming=upcoming)
    return source.run()


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT: finish the exposure in flight, commit it, then leave the loop."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
