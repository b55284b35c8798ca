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
$skyqa classify "$out/night" --truth "$out/night/truth.csv"
$skyqa report --out "$out/report" $(ls "$out"/night/*.fits* | head -n 3)
echo "report PNGs in $out/report"
