#!/usr/bin/env bash
# make models: rebuild the shipped default models and publish them as a new version in models/ with
# `skyqa adapt` (the site-adaptation workflow: dataset, DESOM-1, DESOM-2 sized to the archive, calibration
# derived from the labelled Good exposures, label spreading, held-out evaluation, model card).
#
# The archive mixes the project's own simulator (site cfht, 12 CCDs of 1024 x 512) with the randomised site
# (skyqa.simulator.randomised: every exposure its own camera and sky, its `small` size), so that the default
# does not learn one camera and sky (issue 9, point 5). 760 exposures fit a 2-core machine (~1.5 CPU-s each to
# simulate with 32-row RICE tiles, same pixels as fpack's 1-row tiles but faster to write, ~1.5 to build the
# dataset). Sampling 300 cutouts per CCD gives each exposure about the 2400-3600 cutouts a small exposure yields
# in serving, so training histo-vectors carry about the sampling noise of the ones classified at night.
#
# Labels: the simulator's truth for every archive exposure (we are the curator of our own simulation); adapt
# holds out a quarter of them, scores the map named from the rest on them, and names the published map from all.
# Finished steps are kept in $WORK: a night with its truth.csv is not simulated again, and adapt skips the
# steps whose inputs did not change. REPOSITORY (default models) is where the new version is published: a copy of
# models/ lets a candidate default be benchmarked before it ships.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-out/models-work}
skyqa=.venv/bin/skyqa
nights=()
night() {  # site seed exposures size
    local dir="$work/archive-$1-$2"
    [ -f "$dir/truth.csv" ] || $skyqa simulate --site "$1" --out "$dir" --n "$3" --seed "$2" --size "$4" \
        --tile-rows 32 --workers 2 --no-progress
    nights+=("$dir")
}
night cfht "${CFHT_SEED:-101}" "${CFHT_EXPOSURES:-360}" "${CFHT_SIZE:-12,1024,512}"
night randomised "${RANDOMISED_SEED:-201}" "${RANDOMISED_EXPOSURES:-400}" small
.venv/bin/python - "$work/labels.csv" "${nights[@]}" <<'EOF'
import sys
from skyqa.simulator.truth import read_truth

rows = [f"{eid},{row['label']}\n" for night in sys.argv[2:] for eid, row in read_truth(night).items()]
open(sys.argv[1], "w").write("exposure_id,label\n" + "".join(rows))
EOF
SKYQA_CUTOUTS__PER_CCD=${CUTOUTS_PER_CCD:-300} $skyqa adapt "${nights[@]}" --out "$work/adapt" \
    --labels "$work/labels.csv" --repository "${REPOSITORY:-models}" --workers 2
