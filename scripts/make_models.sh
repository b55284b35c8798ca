#!/usr/bin/env bash
# make models: rebuild the shipped default models from simulated data and publish them as a new
# version in models/. Every step is a `skyqa` command (the documented retraining workflow).
#
# The archive uses 12 CCDs of 1024 x 512 per exposure to keep simulation cheap on a 2-core machine;
# sampling 300 cutouts per CCD gives each exposure the 3600 cutouts a 36-CCD exposure yields in
# serving, so training histo-vectors carry the same sampling noise as the ones classified at night.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-out/models-work}
skyqa=.venv/bin/skyqa
[ -f "$work/archive/truth.csv" ] || $skyqa simulate --out "$work/archive" --n "${ARCHIVE_EXPOSURES:-600}" --seed 101 \
    --size "${ARCHIVE_SIZE:-12,1024,512}" --workers 2 --no-progress
SKYQA_CUTOUTS__PER_CCD=${CUTOUTS_PER_CCD:-300} $skyqa dataset build "$work/archive" --out "$work/dataset" --workers 2
$skyqa train desom1 --data "$work/dataset" --out "$work/desom1" --iterations "${DESOM1_ITERATIONS:-1500}" \
    --batch-size "${DESOM1_BATCH:-64}" --max-cutouts "${DESOM1_CUTOUTS:-100000}"
$skyqa train desom2 --data "$work/dataset" --desom1 "$work/desom1" --out "$work/desom2" \
    --iterations "${DESOM2_ITERATIONS:-4000}"
$skyqa curate --cells "$work/desom2/cells.csv" --truth "$work/archive/truth.csv" --out "$work/labels.json" --fill-empty
$skyqa export --desom1 "$work/desom1" --desom2 "$work/desom2" --labels "$work/labels.json" --repository models
