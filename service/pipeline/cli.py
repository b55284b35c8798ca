"""`skyqa classify PATH...`: verdicts for exposure files (or directories of them), in process by default.

A file that cannot be classified gets one line on stderr, `skyqa classify: REASON: DETAIL` (REASON as in
skyqa.service.pipeline.exposure.REASONS, or processing_error for an unforeseen failure), never a traceback,
and the other files are still classified. Exit status: 0 every file has a verdict, 1 some file has none,
2 no exposure file was found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FITS_SUFFIXES = (".fits", ".fits.fz", ".fz", ".fit", ".fits.gz", ".fit.gz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="exposure files or directories holding them")
    parser.add_argument("--json", action="store_true", help="one verdict JSON object per line")
    parser.add_argument("--truth", type=Path, help="truth manifest: also print scores and a confusion matrix")
    parser.add_argument("--models", type=Path, help="model repository (default: settings.models.repository)")
    parser.add_argument("--inference", choices=["local", "triton"], help="override settings.inference.mode")
    parser.add_argument("--archive", action="store_true", help="also write each verdict to the archive (settings.archive.url)")


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, directories expanded to their FITS files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.name.endswith(FITS_SUFFIXES)))
        else:
            files.append(path)
    return files


def one_line(text: str) -> str:
    """Messages quoting a hostile header or an astropy error can hold newlines and NULs: keep one line."""
    return " ".join(text.replace("\0", " ").split())


def table_row(verdict) -> str:  # noqa: ANN001 - skyqa.service.verdict.Verdict
    m = verdict.metrics
    cell = f"{verdict.cell[0]},{verdict.cell[1]}" if verdict.cell else "-"

    def fmt(value: float | None, spec: str) -> str:
        return format(value, spec) if value is not None else "-"

    return (
        f"{verdict.exposure_id:<14}{verdict.label.value:<11}{cell:>6}{fmt(verdict.distance, '.3g'):>9}"
        f"{fmt(m.fwhm_arcsec, '.2f'):>7}{fmt(m.elongation, '.2f'):>7}{fmt(m.background_adu, '.0f'):>8}"
        f"{verdict.detections:>8}{len(verdict.dead_ccds):>5}{verdict.timings_s.get('total', 0):>7.2f}"
    )


HEADER = f"{'exposure':<14}{'label':<11}{'cell':>6}{'dist':>9}{'fwhm':>7}{'elong':>7}{'sky':>8}{'W':>8}{'dead':>5}{'sec':>7}"


def run(args: argparse.Namespace) -> int:
    from skyqa.service.pipeline.classify import Classifier
    from skyqa.service.pipeline.exposure import ExposureError
    from skyqa.service.labels import Label
    from skyqa.service.scoring import read_truth_labels, score_report

    settings = args.settings
    if args.models:
        settings.models.repository = args.models
    if args.inference:
        settings.inference.mode = args.inference
    files = expand(args.paths)
    if not files:
        print("skyqa classify: no exposure files found", file=sys.stderr)
        return 2
    truth = read_truth_labels(args.truth) if args.truth else {}
    classifier = Classifier(settings)
    archive = None
    if args.archive:
        from skyqa.service.archive.store import Archive

        archive = Archive(settings.archive.url)
    pairs: list[tuple[Label, Label]] = []
    failures = 0
    if not args.json:
        print(HEADER)
    try:
        for path in files:
            try:
                verdict = classifier.classify(path)
            except ExposureError as error:  # its message names the file
                failures += 1
                print(one_line(f"skyqa classify: {error}"), file=sys.stderr)
                continue
            except Exception as error:  # a bug or an unforeseen file: say so on one line, go on with the next file
                failures += 1
                print(one_line(f"skyqa classify: processing_error: {path}: {type(error).__name__}: {error}"),
                      file=sys.stderr)
                continue
            print(verdict.model_dump_json() if args.json else table_row(verdict), flush=True)
            if archive is not None:
                archive.write([verdict], source="classify")
            if verdict.exposure_id in truth:
                pairs.append((truth[verdict.exposure_id], verdict.label))
    finally:
        classifier.close()
    if truth and not args.json:
        print()
        print(score_report(pairs))
    return 1 if failures else 0
