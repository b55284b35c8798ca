#!/usr/bin/env bash
# make demo: simulate a small night (every class), classify it in process with the shipped models,
# print the verdict table and the confusion matrix against the truth, and draw the report PNGs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/demo}
skyqa=.venv/bin/skyqa
n=${DEMO_EXPOSURES:-36}
rm -rf "$out/night"
$skyqa simulate --out "$out/night" --n "$n" --seed "${DEMO_SEED:-20261123}" --size small --workers 2 --every-class
# The night also goes into a fresh verdict archive (SQLite), then two searches over it.
export SKYQA_ARCHIVE__URL="sqlite:///$(realpath -m "$out")/archive.db"  # OUT may be relative or absolute
rm -f "$out"/archive.db*
$skyqa classify "$out/night" --truth "$out/night/truth.csv" --archive
first=$($skyqa search list --order exposure --limit 1 --json | .venv/bin/python -c 'import json,sys; print(json.loads(sys.stdin.readline())["exposure_id"])')
echo; echo "exposures most similar to $first (Hellinger distance between histo-vectors):"
$skyqa search similar "$first" --k 5
# Content search: the DESOM-1 nodes that BadFocus (donut-shaped sources) exposures over-populate most.
nodes=$(.venv/bin/python -m skyqa.service.search.demo_nodes --label BadFocus --top 5)
echo; echo "exposures with >= 10% of their sources in the BadFocus-typical DESOM-1 nodes $nodes:"
$skyqa search content --nodes "$nodes" --min-fraction 0.1 --limit 10
$skyqa report --out "$out/report" $(ls "$out"/night/*.fits* | head -n 3)
echo "report PNGs in $out/report"
