#!/usr/bin/env bash
# make models: rebuild the shipped default models from simulated data and publish them as a new
# version in models/. Every step is a `skyqa` command (the documented retraining workflow).
#
# The archive is ARCHIVE_NIGHTS nights of 600 exposures, each of 12 CCDs of 1024 x 512, to keep
# simulation cheap on a 2-core machine; sampling 300 cutouts per CCD gives each exposure the 3600
# cutouts a 36-CCD exposure yields in serving, so training histo-vectors carry the same sampling
# noise as the ones classified at night.
#
# Finished steps are kept in $WORK: a night with its truth.csv is not simulated again, and a
# finished DESOM-1 ($WORK/desom1/meta.json) is not retrained, so growing the archive and re-running
# retrains DESOM-2 only, on top of the DESOM-1 already published (export then reuses its version).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-out/models-work}
skyqa=.venv/bin/skyqa
nights=()
for seed in ${ARCHIVE_NIGHTS:-101 102 103}; do
    night="$work/archive-$seed"
    [ -f "$night/truth.csv" ] || $skyqa simulate --out "$night" --n "${ARCHIVE_EXPOSURES:-600}" --seed "$seed" \
        --size "${ARCHIVE_SIZE:-12,1024,512}" --workers 2 --no-progress
    nights+=("$night")
done
SKYQA_CUTOUTS__PER_CCD=${CUTOUTS_PER_CCD:-300} $skyqa dataset build "${nights[@]}" --out "$work/dataset" --workers 2
[ -f "$work/desom1/meta.json" ] || $skyqa train desom1 --data "$work/dataset" --out "$work/desom1" \
    --iterations "${DESOM1_ITERATIONS:-1500}" --batch-size "${DESOM1_BATCH:-64}" --max-cutouts "${DESOM1_CUTOUTS:-100000}"
$skyqa train desom2 --data "$work/dataset" --desom1 "$work/desom1" --out "$work/desom2" \
    --iterations "${DESOM2_ITERATIONS:-4000}"
$skyqa curate --cells "$work/desom2/cells.csv" --truth "${nights[@]/%//truth.csv}" --data "$work/dataset" \
    --out "$work/labels.json" --fill-empty
$skyqa export --desom1 "$work/desom1" --desom2 "$work/desom2" --labels "$work/labels.json" --repository models
