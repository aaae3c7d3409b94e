#!/usr/bin/env bash
# Prints BENCHMARKS.md's tables (Markdown) from bench/results.json: for every figure, the
# min / median / max over the runs gathered there. Needs jq.
set -euo pipefail
IN=${1:-bench/results.json}
jq -r '
  def mmm(xs): (xs | sort) as $s | if ($s|length) == 0 then "–" else
    "\($s[0]) / \($s[($s|length)/2|floor]) / \($s[-1])" end;
  [.runs[].benches[]] as $all
  | ($all | map(select(.bench == "node_produce"))) as $node
  | ($all | map(select(.bench == "harness_run"))) as $h
  | ($all | map(select(.bench == "proxy_round_trip"))) as $p
  | "runs: \(.runs | length); load before/after each run: \([.runs[] | "\(.load_before) → \(.load_after)"] | join("; "))",
    "",
    "| ceiling | MB/s (min / median / max) |", "|---|---|",
    "| sequential write, no fsync | \(mmm($node | map(.ceilings.disk_seq_write_mb_per_s))) |",
    "| sequential write, fdatasync per MiB | \(mmm($node | map(.ceilings.disk_seq_write_fdatasync_mb_per_s))) |",
    "| loopback TCP | \(mmm($node | map(.ceilings.loopback_tcp_mb_per_s))) |",
    "| per value byte at RF 3 (min of disk/3, TCP/3) | \(mmm($node | map(.ceilings.per_value_byte_mb_per_s))) |",
    "",
    "| acks | value | records/request | full: records/s | MB/s | p50 ms | p99 ms | p99.9 ms | ratio to ceiling | half: p50 ms | p99 ms | p99.9 ms |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ($node[0].cases | to_entries[] | .key as $i | .value as $c
      | ($node | map(.cases[$i])) as $cs
      | "| \($c.acks) | \($c.value_bytes) B | \($c.batch) | \(mmm($cs | map(.full.records_per_s))) | \(mmm($cs | map(.full.mb_per_s))) | \(mmm($cs | map(.full.p50_ms))) | \(mmm($cs | map(.full.p99_ms))) | \(mmm($cs | map(.full.p999_ms))) | \(mmm($cs | map(.ratio_to_ceiling))) | \(mmm($cs | map(.half.p50_ms))) | \(mmm($cs | map(.half.p99_ms))) | \(mmm($cs | map(.half.p999_ms))) |"),
    "",
    "goal acks=all p99 < 10 ms at half load, per run: \($node | map(if .goal.met then "met" else "not met" end) | join(", "))",
    "",
    "| harness | min / median / max |", "|---|---|",
    "| highest ok sends/s, acks=all | \(mmm($h | map(.highest_ok_sends_per_s.acks_all))) |",
    "| highest ok sends/s, acks=0 | \(mmm($h | map(.highest_ok_sends_per_s.acks_0))) |",
    "| first acknowledged write after run start, ms (median of each run) | \(mmm($h | map(.first_ack_ms.median))) |",
    "| first acknowledged write, ms, slowest of each run | \(mmm($h | map(.first_ack_ms.max))) |",
    "| heal to recovered, ms (median of each run) | \(mmm($h | map(.heal_to_recovered_ms.median))) |",
    "| proxy: added p50 per 64 B round trip, µs | \(mmm($p | map(.added_p50_us * 10 | round / 10))) |",
    "| proxy: direct / proxied p99, µs (medians) | \(mmm($p | map(.direct_p99_us | round))) → \(mmm($p | map(.proxied_p99_us | round))) |"
' "$IN"
