"""`skyqa web`: the operator's pages and the API (under /api) in one uvicorn server, on settings.archive.url."""

from __future__ import annotations

import argparse
import getpass
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--hash-password", action="store_true",
                        help="read a password (prompt, or stdin when piped) and print its argon2 hash for web.users")


def run(args: argparse.Namespace) -> int:
    if args.hash_password:
        from skyqa.service.web.auth import hash_password

        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        print(hash_password(password))
        return 0
    import uvicorn

    from skyqa.service.web.app import create_web_app, freeze_startup_heap

    app = create_web_app(args.settings)
    freeze_startup_heap()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
