"""Training-side sub-commands of `skyqa`: dataset, train, evaluate, gallery, curate, export, report.

Argument definitions only at import time; TensorFlow/Keras load inside the command that needs them.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from skyqa.service.pipeline.desom2_input import parse_share
from skyqa.training.schedule import Schedule

SCHEDULE_OPTIONS = {"descriptor_share": (parse_share, "SHARE")}  # (parser, metavar) of non-numeric schedule options


def add_commands(commands: argparse._SubParsersAction) -> None:
    dataset = commands.add_parser("dataset", help="build sharded cutout datasets from exposure files")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dataset_sub.add_parser("build", help="exposures -> shards via the serving-side preprocessing")
    build.add_argument("inputs", nargs="+", type=Path, help="exposure files or directories")
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--workers", type=int, default=2)
    build.set_defaults(run=_run_dataset_build)

    train = commands.add_parser("train", help="train DESOM-1 (cutouts) or DESOM-2 (histo-vectors)")
    train.add_argument("model", choices=["desom1", "desom2"])
    train.add_argument("--data", type=Path, required=True, help="dataset directory from `skyqa dataset build`")
    train.add_argument("--out", type=Path, required=True, help="output directory for this model")
    train.add_argument("--desom1", type=Path, help="desom2 only: the trained DESOM-1 output directory")
    train.add_argument("--iterations", type=int, help="default: the paper's schedule")
    train.add_argument("--batch-size", type=int, help="default: 256 (desom1), 64 (desom2)")
    train.add_argument("--max-cutouts", type=int, default=200_000,
                       help="desom1: most cutouts held in memory; a bigger dataset is streamed from its shards")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--descriptor-share", type=parse_share, default=Schedule().descriptor_share, metavar="SHARE",
                       help="desom2: append the exposure descriptor, weighted to carry this share of the "
                            "histo-vector's variance: a total over every feature (0.25) or one per feature group "
                            "(shape=0.4,background=0.1; a group at 0 is left out); 0 trains a 625-input version "
                            "(default %(default)s)")
    train.set_defaults(run=_run_train)

    evaluate = commands.add_parser("evaluate", help="map quality (QE, TE, reconstruction, usage) and cell scores")
    evaluate.add_argument("--desom1", type=Path, help="DESOM-1 training output directory (needs --data)")
    evaluate.add_argument("--desom2", type=Path, help="DESOM-2 training output directory")
    evaluate.add_argument("--data", type=Path, help="dataset: DESOM-1 cutout sample; DESOM-2 histo-vectors when it "
                          "is not DESOM-2's training set (then through --desom1)")
    evaluate.add_argument("--truth", type=Path, help="labelled sample (CSV: exposure_id,label): cell purity, scores")
    evaluate.add_argument("--labels", type=Path, help="labels.json to score (default: majority of --truth per cell)")
    evaluate.add_argument("--cutouts", type=int, default=20_000, help="DESOM-1 evaluation sample size")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--out", type=Path, required=True, help="directory for evaluation.json and pictures")
    evaluate.set_defaults(run=_run_evaluate)

    gallery = commands.add_parser("gallery", help="static HTML curation gallery: one page per DESOM-2 cell")
    gallery.add_argument("--desom2", type=Path, required=True, help="DESOM-2 training output directory")
    gallery.add_argument("--data", type=Path, required=True, help="the dataset DESOM-2 was trained on")
    gallery.add_argument("--labels", type=Path, required=True, help="current labels.json")
    gallery.add_argument("--out", type=Path, required=True)
    gallery.add_argument("--per-cell", type=int, default=8, help="member exposures shown per cell")
    gallery.add_argument("--seed", type=int, default=0, help="which members are shown")
    gallery.set_defaults(run=_run_gallery)

    curate = commands.add_parser("curate", help="propose the DESOM-2 label map; keep and apply expert edits")
    curate.add_argument("--cells", type=Path, required=True, help="cells.csv written by `skyqa train desom2`")
    curate.add_argument("--truth", type=Path, nargs="+", required=True,
                        help="labelled sample(s) (CSV: exposure_id,label)")
    curate.add_argument("--data", type=Path, help="the dataset DESOM-2 was trained on: members that fail the "
                        "background check (configured as for serving) do not vote")
    curate.add_argument("--out", type=Path, required=True,
                        help="labels.json to write (with --data, calibration.json is written beside it)")
    curate.add_argument("--previous", type=Path, help="an earlier labels.json whose expert entries are kept")
    curate.add_argument("--edits", type=Path, help="CSV of expert edits (cell,label[,note]) to apply")
    curate.add_argument("--purity", type=float, default=0.6)
    curate.add_argument("--min-members", type=int, default=1)
    curate.add_argument("--fill-empty", action="store_true",
                        help="label member-less cells whose labelled grid neighbours (>= 2) all agree")
    curate.set_defaults(run=_run_curate)

    export = commands.add_parser("export", help="publish a new numbered version into the model repository")
    export.add_argument("--desom1", type=Path, required=True)
    export.add_argument("--desom2", type=Path, required=True)
    export.add_argument("--labels", type=Path, required=True)
    export.add_argument("--repository", type=Path, help="model repository (default: settings.models.repository)")
    export.set_defaults(run=_run_export)

    adapt = commands.add_parser("adapt", help="a site's archive (+ labels for ~100 exposures) -> a new model version",
                                description="Builds the datasets, trains DESOM-1 and DESOM-2 on the archive, derives "
                                "the version's calibration, names the map from the labels (spread over the map), "
                                "evaluates on held-out labels and publishes. Resumable: finished steps are kept in "
                                "--out. Without --labels it stops at the map and the gallery.")
    adapt.add_argument("archive", nargs="+", type=Path, help="the site's exposure files or directories")
    adapt.add_argument("--out", type=Path, required=True, help="work directory (steps, dataset, maps, gallery)")
    adapt.add_argument("--labels", type=Path, help="CSV exposure_id,label for some archive exposures (~100)")
    adapt.add_argument("--repository", type=Path, help="model repository (default: settings.models.repository)")
    adapt.add_argument("--propose", type=int, metavar="N", help="write (and print) the N exposures whose labels "
                       "would name the most of the map to OUT/propose.csv, then stop")
    for name, value in asdict(Schedule()).items():
        parse, metavar = SCHEDULE_OPTIONS.get(name, (type(value), type(value).__name__.upper()))
        adapt.add_argument(f"--{name.replace('_', '-')}", type=parse, default=value, metavar=metavar,
                           help="default: %(default)s")
    adapt.set_defaults(run=_run_adapt)

    report = commands.add_parser("report", help="PNG pictures: DESOM-1 prototypes, DESOM-2 label map, density maps")
    report.add_argument("exposures", nargs="*", type=Path, help="exposures whose density maps to draw")
    report.add_argument("--out", type=Path, required=True)
    report.set_defaults(run=_run_report)


def _run_dataset_build(args: argparse.Namespace) -> int:
    from skyqa.service.pipeline.cli import expand
    from skyqa.training.dataset import build

    entries = build(expand(args.inputs), args.out, args.settings, workers=args.workers)
    print(f"{args.out}: {len(entries)} exposures, {sum(e.stop - e.start for e in entries)} cutouts")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from skyqa.training import workflow

    if args.model == "desom1":
        workflow.train_desom1(args.data, args.out, args.iterations, args.batch_size, args.max_cutouts, args.seed)
    else:
        if args.desom1 is None:
            raise SystemExit("skyqa train desom2: --desom1 DIR (the trained DESOM-1) is required")
        workflow.train_desom2(args.data, args.desom1, args.out, args.iterations, args.batch_size, args.seed,
                              descriptor_share=args.descriptor_share)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from skyqa.training.evaluate import evaluate

    try:
        _, text = evaluate(args.out, args.desom1, args.desom2, args.data, args.truth, args.labels, args.cutouts,
                           args.seed)
    except ValueError as error:
        raise SystemExit(f"skyqa evaluate: {error}") from error
    print(text)
    return 0


def _run_gallery(args: argparse.Namespace) -> int:
    from skyqa.training.gallery import gallery

    print(gallery(args.desom2, args.data, args.labels, args.out, args.per_cell, args.seed))
    return 0


def _run_curate(args: argparse.Namespace) -> int:
    from skyqa.service.calibration import CALIBRATION
    from skyqa.service.labels import LabelMap
    from skyqa.service.scoring import read_truth_labels
    from skyqa.training.curate import (apply_edits, background_flagged, calibrate, fill_empty, propose,
                                       read_cells)
    from skyqa.training.dataset import read_manifest

    previous = LabelMap.load(args.previous) if args.previous else None
    grid = previous.grid if previous else (20, 20)
    cells = read_cells(args.cells)
    truth = {eid: label for path in args.truth for eid, label in read_truth_labels(path).items()}
    if args.data:
        entries = read_manifest(args.data)
        metrics = {e.exposure_id: e.metrics for e in entries}
        instruments = {e.exposure_id: e.instrument for e in entries}
        calibration = calibrate(metrics, truth, args.settings.background_check, source=str(args.data),
                                descriptors={e.exposure_id: e.descriptor for e in entries}, instruments=instruments)
        calibration.save(args.out.with_name(CALIBRATION))
        check = calibration.background_check(args.settings.background_check)
        flagged = background_flagged(metrics, calibration, args.settings.background_check, instruments)
        cells = {eid: cell for eid, cell in cells.items() if eid not in flagged}
        print(f"background check from the archive: structure <= {check.max_background_structure}, "
              f"exptime >= {check.min_exptime_s} s; background range on {len(calibration.background_range)} "
              f"features ({args.out.with_name(CALIBRATION)})")
        if calibration.instruments:
            print(f"instruments with limits of their own: {', '.join(calibration.instruments)}")
        print(f"{len(flagged)} exposures fail the background check and do not vote")
    label_map = propose(cells, truth, grid, args.purity, args.min_members, previous)
    if args.fill_empty:
        label_map = fill_empty(label_map, set(cells.values()))
    if args.edits:
        label_map = apply_edits(label_map, args.edits)
    label_map.save(args.out)
    print(f"{args.out}: {len(label_map.cells)} labelled cells of {grid[0] * grid[1]}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from skyqa.training import workflow

    repository = args.repository or args.settings.models.repository
    v1, v2 = workflow.export(args.desom1, args.desom2, args.labels, repository)
    print(f"{repository}: desom1 version {v1}, desom2 version {v2}")
    return 0


def _run_adapt(args: argparse.Namespace) -> int:
    from skyqa.service.pipeline.cli import expand
    from skyqa.training.adapt import adapt

    schedule = Schedule(**{name: getattr(args, name) for name in asdict(Schedule())})
    files = expand(args.archive)
    if not files:
        raise SystemExit("skyqa adapt: no exposure file found")
    summary = adapt(files, args.out, args.settings, schedule, args.labels, args.repository, args.propose)
    for name, step in summary["steps"].items():
        if "wall_s" in step:
            print(f"{name:<9} {step['wall_s']:8.1f} s wall {step['cpu_s']:8.1f} s CPU")
    if "name" in summary["steps"]:
        named = summary["steps"]["name"]["result"]
        print(f"map {summary['map'][0]} x {summary['map'][1]}: {named['labelled_cells']} cells labelled "
              f"({named['spread']} by spreading, alpha {named['alpha']}); unlabelled: "
              f"{named['unlabelled_cells_fraction']:.1%} of the cells, {named['unlabelled_archive_fraction']:.1%} "
              "of the archive")
    if "propose" in summary["steps"]:
        print(Path(summary["steps"]["propose"]["result"]["file"]).read_text(), end="")
    elif "publish" not in summary["steps"]:
        print(f"map {summary['map'][0]} x {summary['map'][1]}: label exposures (gallery {args.out / 'gallery'}"
              f"/index.html, or `skyqa adapt ... --propose N`), then rerun with --labels")
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from skyqa.training import workflow

    for path in workflow.report(args.settings, args.exposures, args.out):
        print(path)
    return 0
