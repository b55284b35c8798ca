"""`skyqa`: one CLI for simulation, classification, the daemon, training and reports.

Sub-command modules are imported for their arguments only; each imports its heavy dependencies
(GalSim, TensorFlow) inside `run`, so `skyqa classify` and `skyqa serve` never load them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skyqa.service.pipeline import cli as classify_cli
from skyqa import __version__
from skyqa.service.api import cli as api_cli
from skyqa.service.archive import cli as archive_cli
from skyqa.service.curation import cli as curation_cli
from skyqa.service.search import cli as search_cli
from skyqa.service.log import configure_logging
from skyqa.service.stream import cli as serve_cli
from skyqa.service.web import cli as web_cli
from skyqa.simulator import cli as simulate_cli
from skyqa.training import cli as training_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyqa", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML settings file (else $SKYQA_CONFIG); env vars override it")
    parser.add_argument("--log-level", default=None, help="override settings.log_level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, help_text in [
        ("simulate", simulate_cli, "simulate a night of MegaCam-like exposures with GalSim (truth in a manifest)"),
        ("classify", classify_cli, "classify exposure files in process and print verdicts"),
        ("serve", serve_cli, "run the streaming daemon (Kafka or a watched directory)"),
        ("archive", archive_cli, "fill the verdict archive (import, consume Kafka) and migrate its schema"),
        ("search", search_cli, "search the archive: similar exposures, content (DESOM-1 nodes), filtered lists"),
        ("curation", curation_cli, "curate the DESOM-2 label map: edits in the archive, publish a new version, undo"),
        ("api", api_cli, "serve the archive and search over HTTP (FastAPI)"),
        ("web", web_cli, "serve the operator's pages (night, exposures, maps, curation) and the API under /api"),
    ]:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    training_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from skyqa.service.config import load_settings

    settings = load_settings(args.config)
    configure_logging(args.log_level or settings.log_level)
    args.settings = settings
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
