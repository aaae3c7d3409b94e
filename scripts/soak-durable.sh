#!/usr/bin/env bash
# False positives: the durable configuration (acks=all, min.insync.replicas=2, unclean election
# off, current protocol) under every fault package, SEEDS seeds x RUN_SECONDS each; any invalid
# verdict is a false positive (or a real bug) and fails the soak. `make soak-durable` runs
# 50 seeds x 60 s per package (hours; not CI). Prints one line per run and a tally, and writes
# $STORE/soak-durable.json. JOBS runs go at once (default 1: figures stay comparable).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-50}
RUN_SECONDS=${RUN_SECONDS:-60}
PACKAGES=${PACKAGES:-"kill pause delay partition isr-pressure leader-loss rolling-restart all"}
STORE=$(realpath -m "${STORE:-store}/soak-durable")
JOBS=${JOBS:-1}
BIN=${BIN:-target/release/faultline}
NODE_BIN=${NODE_BIN:-$(dirname "$BIN")/faultline-node}
mkdir -p "$STORE"
results="$STORE/runs.tsv"
: > "$results"

one() {
  local package=$1 seed=$2 code=0
  "$BIN" test --acks all --min-insync-replicas 2 --nemesis "$package" \
    --time-limit "${RUN_SECONDS}s" --seed "$seed" --store "$STORE/$package" \
    --node-bin "$NODE_BIN" >/dev/null 2>"$STORE/$package-$seed.log" || code=$?
  printf '%s\t%s\t%s\t%s\n' "$package" "$seed" "$code" "$(readlink -f "$STORE/$package/latest")" >> "$results"
  echo "soak-durable: $package seed $seed: exit $code"
}

echo "soak-durable: load $(cut -d' ' -f1-3 /proc/loadavg) at start" >&2
started=$(date +%s)
for package in $PACKAGES; do
  for seed in $(seq 1 "$SEEDS"); do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    one "$package" "$seed" &
  done
done
wait
echo "soak-durable: load $(cut -d' ' -f1-3 /proc/loadavg) at end, $(( $(date +%s) - started )) s" >&2
jq -R -s --arg seeds "$SEEDS" --arg secs "$RUN_SECONDS" '
  [split("\n")[] | select(length > 0) | split("\t") | {package: .[0], seed: (.[1]|tonumber), exit: (.[2]|tonumber), run: .[3]}]
  | {seeds: ($seeds|tonumber), run_seconds: ($secs|tonumber), runs: length,
     valid: map(select(.exit == 0)) | length, invalid: map(select(.exit == 1)) | length,
     unknown: map(select(.exit == 2)) | length, errors: map(select(.exit > 2)) | length,
     not_valid: map(select(.exit != 0))}' "$results" > "$STORE/soak-durable.json"
jq -c '{runs, valid, invalid, unknown, errors}' "$STORE/soak-durable.json"
# Invalid or a harness error fails the soak; unknown is reported (it is honest, not a pass).
[ "$(jq '.invalid + .errors' "$STORE/soak-durable.json")" = 0 ]
