"""`skyqa curation edit|import|list|publish|revert`: curating the DESOM-2 map without the browser.

Edits go to the archive (settings.archive.url), versions to the model repository (settings.models.repository).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import asdict
from pathlib import Path

from skyqa.service.labels import Label


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="override settings.archive.url")
    parser.add_argument("--repository", type=Path, help="override settings.models.repository")
    parser.add_argument("--user", default=None, help="who edits or publishes (default: the login name)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    edit = actions.add_parser("edit", help="set (or clear) one cell's label on the latest DESOM-2 version")
    edit.add_argument("cell", help="cell index, or x,y")
    edit.add_argument("label", choices=[label.value for label in Label] + ["clear"])
    edit.add_argument("--note", default="")
    imp = actions.add_parser("import", help="record the edits of a `skyqa curate --edits` CSV (cell,label[,note])")
    imp.add_argument("csv", type=Path)
    listing = actions.add_parser("list", help="edits, oldest first")
    listing.add_argument("--pending", action="store_true", help="only those not yet published")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    publish = actions.add_parser("publish", help="latest version + its pending edits -> a new numbered version")
    publish.add_argument("--note", default="")
    revert = actions.add_parser("revert", help="publish an earlier version's labels again as a new version (undo)")
    revert.add_argument("version", help="the version whose labels to publish again")
    revert.add_argument("--note", default="")


def run(args: argparse.Namespace) -> int:
    from skyqa.service.modelrepo import VersionExists

    try:
        return _run(args)
    except (ValueError, FileNotFoundError, VersionExists) as err:  # off the map, nothing to publish, no such
        print(f"skyqa curation: {err}", file=sys.stderr)         # version, another ONNX: one line, no traceback
        return 1


def _run(args: argparse.Namespace) -> int:
    from skyqa.service.archive.store import Archive
    from skyqa.service.curation import edits, publish

    settings = args.settings
    repository, name = args.repository or settings.models.repository, settings.models.desom2
    user = args.user or getpass.getuser()
    if args.action == "revert":
        done = publish.republish(repository, name, args.version, user, args.note)
        print(f"{name} v{done.version}: labels of v{args.version} again (latest was v{done.parent})")
        return 0
    archive = Archive(args.url or settings.archive.url)
    try:
        if args.action == "edit":
            cell = tuple(int(v) for v in args.cell.split(",")) if "," in args.cell else int(args.cell)
            label = Label.UNLABELLED if args.label == "clear" else Label(args.label)
            made = edits.record_edit(archive, repository, name, cell=cell, label=label, note=args.note, user=user)
            print(f"edit {made.id}: cell {made.cell} -> {made.label.value} on {name} v{made.desom2_version} (pending)")
        elif args.action == "import":
            for row in edits.read_edits_csv(args.csv):
                edits.record_edit(archive, repository, name, cell=row.cell, label=row.label, note=row.note, user=user)
            print(f"{args.csv}: edits recorded (pending)")
        elif args.action == "list":
            for edit in edits.list_edits(archive, pending=True if args.pending else None):
                if args.json:
                    print(json.dumps(asdict(edit), default=str))
                else:
                    print(f"{edit.id}\tv{edit.desom2_version}\tcell {edit.cell}\t{edit.label.value}\t{edit.user}\t"
                          f"{edit.created_at:%Y-%m-%d %H:%M}\t{edit.published_version or 'pending'}\t{edit.note}")
        else:
            done = publish.publish_edits(archive, repository, name, user, args.note)
            print(f"{name} v{done.version}: {len(done.edits)} edit(s) of v{done.parent} published")
    finally:
        archive.close()
    return 0
