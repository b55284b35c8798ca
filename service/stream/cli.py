"""`skyqa serve`: the streaming daemon (Kafka or a watched directory). Heavy imports happen inside `run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: an absent sub-command --config must not hide `skyqa --config FILE serve`.
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML settings file (else $SKYQA_CONFIG)")
    parser.add_argument("--source", choices=["kafka", "dir"], help="override settings.serve.source")
    parser.add_argument("--inference", choices=["local", "triton"], help="override settings.inference.mode")
    parser.add_argument("--watch-dir", type=Path, help="override settings.serve.watch_dir (with --source dir)")


def run(args: argparse.Namespace) -> int:
    from skyqa.service.config import Settings, load_settings
    from skyqa.service.stream.serve import serve

    settings: Settings = getattr(args, "settings", None) or load_settings(getattr(args, "config", None))
    serve_cfg = {k: v for k, v in (("source", args.source), ("watch_dir", args.watch_dir)) if v is not None}
    settings = settings.model_copy(update={
        "serve": settings.serve.model_copy(update=serve_cfg),
        "inference": settings.inference.model_copy(update={"mode": args.inference or settings.inference.mode}),
    })
    return serve(settings)


def main(argv: list[str] | None = None) -> int:
    """`python -m skyqa.service.stream.cli`: the same daemon without the umbrella CLI."""
    from skyqa.service.config import load_settings
    from skyqa.service.log import configure_logging

    parser = argparse.ArgumentParser(prog="skyqa serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.settings = load_settings(getattr(args, "config", None))
    configure_logging(args.settings.log_level)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
