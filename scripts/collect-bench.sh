#!/usr/bin/env bash
# Runs the benchmarks RUNS times (default 1) and gathers every bench's JSON line (a stdout line
# holding a JSON object with a "bench" key) into bench/results.json, with the command, the machine (nproc, CPU
# model, memory), the date and the load average before and after each run. `make bench` calls
# it; BENCH_ARGS narrows what runs, e.g.
#   RUNS=3 BENCH_ARGS="-p faultline-node --bench produce_throughput" scripts/collect-bench.sh
# Each run's full output is kept beside it as bench/run-N.log. Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
RUNS=${RUNS:-1}
BENCH_ARGS=${BENCH_ARGS:---workspace}
OUT=${OUT:-bench/results.json}
mkdir -p bench
command -v jq >/dev/null || { echo "collect-bench: jq is needed (apt-get install jq)" >&2; exit 254; }

load() { cut -d' ' -f1-3 /proc/loadavg; }
runs='[]'
for n in $(seq 1 "$RUNS"); do
  before=$(load)
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  # The benches print their figures on stdout; cargo's own output goes to stderr.
  $CARGO bench $BENCH_ARGS 2> >(tee "bench/run-$n.stderr.log" >&2) | tee "bench/run-$n.log"
  after=$(load)
  lines=$(grep '^{.*"bench":' "bench/run-$n.log" | jq -s 'map(select(type == "object" and has("bench")))')
  runs=$(jq -c --argjson lines "$lines" --arg before "$before" --arg after "$after" \
    --arg started "$started" --argjson n "$n" \
    '. + [{run: $n, started: $started, load_before: $before, load_after: $after, benches: $lines}]' <<<"$runs")
done
# Figures other targets record in the same file (`detection`, `shrink`: scripts/record-figures.sh)
# are carried over.
kept='{}'
[ -f "$OUT" ] && kept=$(jq -c '{detection, shrink} | with_entries(select(.value != null))' "$OUT")
jq -n --argjson runs "$runs" --argjson kept "$kept" \
  --arg command "RUNS=$RUNS BENCH_ARGS=\"$BENCH_ARGS\" scripts/collect-bench.sh ($CARGO bench $BENCH_ARGS)" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --argjson nproc "$(nproc)" \
  --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  --argjson mem_kib "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
  --arg kernel "$(uname -r)" \
  '{command: $command, date: $date,
    machine: {nproc: $nproc, cpu_model: $cpu, mem_total_kib: $mem_kib, kernel: $kernel},
    runs: $runs} + $kept' > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "collect-bench: $(jq '[.runs[].benches[]] | length' "$OUT") bench lines from $RUNS run(s) in $OUT" >&2
