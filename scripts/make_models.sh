#!/usr/bin/env bash
# make models: rebuild the shipped default models from simulated data and publish them as a new
# version in models/. Every step is a `skyqa` command (the documented retraining workflow).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-out/models-work}
skyqa=.venv/bin/skyqa
$skyqa simulate --out "$work/archive" --n "${ARCHIVE_EXPOSURES:-600}" --seed 101 --size "${ARCHIVE_SIZE:-small}" --workers 2
$skyqa dataset build "$work/archive" --out "$work/dataset" --workers 2
$skyqa train desom1 --data "$work/dataset" --out "$work/desom1" --iterations "${DESOM1_ITERATIONS:-3000}" \
    --batch-size 128 --max-cutouts "${DESOM1_CUTOUTS:-100000}"
$skyqa train desom2 --data "$work/dataset" --desom1 "$work/desom1" --out "$work/desom2" \
    --iterations "${DESOM2_ITERATIONS:-4000}"
$skyqa curate --cells "$work/desom2/cells.csv" --truth "$work/archive/truth.csv" --out "$work/labels.json"
$skyqa export --desom1 "$work/desom1" --desom2 "$work/desom2" --labels "$work/labels.json" --repository models
