"""`skyqa api`: the archive's HTTP API (uvicorn), on the archive from settings.archive.url."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from skyqa.service.api.app import create_app

    uvicorn.run(create_app(args.settings), host=args.host, port=args.port, log_level="warning")
    return 0
