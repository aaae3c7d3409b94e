#!/usr/bin/env bash
# Records a job's measured figures in bench/results.json under KEY (`detection`: the JSON that
# `faultline suite detection` writes; `shrink`: the `shrink.json` files of shrunk runs, as a
# list), keeping everything else in the file. Usage:
#   scripts/record-figures.sh detection store/detection/detection.json
#   scripts/record-figures.sh shrink RUN/shrink.json [RUN/shrink.json ...]
# Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results.json}
command -v jq >/dev/null || { echo "record-figures: jq is needed (apt-get install jq)" >&2; exit 254; }
[ $# -ge 2 ] || { echo "usage: $0 detection|shrink FILE..." >&2; exit 254; }
key=$1; shift
for f in "$@"; do
  jq -e . "$f" >/dev/null 2>&1 || { echo "record-figures: $f is not JSON" >&2; exit 254; }
done
case "$key" in
  detection) value=$(jq -c . "$1") ;;
  shrink) value=$(jq -s -c . "$@") ;;
  *) echo "record-figures: KEY must be detection or shrink, not $key" >&2; exit 254 ;;
esac
[ -f "$OUT" ] || echo '{}' > "$OUT"
jq --arg key "$key" --argjson value "$value" '.[$key] = $value' "$OUT" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "record-figures: $key recorded in $OUT" >&2
