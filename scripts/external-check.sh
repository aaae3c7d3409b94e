#!/usr/bin/env bash
# `make external-check`: Kafka-protocol systems under faults, each by its system file
# (docs/systems.md). Prints one line per run (its verdict and where it is stored) and a table at
# the end. A run's INVALID verdict is a finding to read, not a failure of this script; the exit
# is 1 only when a run could not be made (exit 254 or a crash) or faultline-node's own file is
# not VALID.
#   1. faultline-node by its system file: kill, pause, partition
#   2. Tansu 0.6.0, one node on SQLite: kill, pause, partition
#   3. Tansu 0.6.0, one node on SQLite: kill and power loss (--lazyfs; needs /dev/fuse and root)
#   4. Tansu 0.6.0, three brokers on one PostgreSQL: kill, pause, partition
#   5. Tansu, each engine, idempotent Kafka producers (--idempotence): kill, pause, drop-response;
#      on PostgreSQL also examples/systems/tansu/pause-resume.txt (three 3 s pauses)
#   6. Tansu on PostgreSQL, idempotent: each broker cut from PostgreSQL in turn
#      (storage-cuts.txt), 100 ms on the storage links (storage-latency.txt), PostgreSQL
#      killed and restarted (postgres-kill.txt) and paused (postgres-pause.txt)
# Tansu runs are SKIPPED, saying so, when tansu is not installed (scripts/install-tansu.sh).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN="${CARGO_TARGET_DIR:-target}/debug"
STORE="${STORE:-store}/external"
TIME="${TIME_LIMIT:-30s}"
TANSU_BIN="${TANSU_BIN:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}"
export PATH="$PWD/$BIN:$(dirname "$TANSU_BIN"):$PATH"
status=0
table=()

run() { # NAME EXPECT_VALID ARGS...
    local name="$1" must_be_valid="$2"
    shift 2
    local out verdict code
    out="$(faultline test --time-limit "$TIME" --store "$STORE/$name" "$@" 2>&1)"
    code=$?
    verdict="$(printf '%s\n' "$out" | sed -n 's/^verdict *//p' | head -1)"
    [ -n "$verdict" ] || verdict="no verdict (exit $code): $(printf '%s\n' "$out" | tail -1)"
    if [ "$code" -ge 2 ] || { [ "$must_be_valid" = yes ] && [ "$code" != 0 ]; }; then
        status=1
    fi
    printf '%s\n' "$out" | grep -E '^(verdict|anomalies|why|report) ' | sed "s/^/[$name] /"
    table+=("$(printf '%-22s %s' "$name" "$verdict")")
}

run faultline-node yes --system examples/systems/faultline-node.toml \
    --nemesis kill,pause,partition

if [ -x "$TANSU_BIN" ]; then
    run tansu-sqlite no --system examples/systems/tansu.toml \
        --nemesis kill,pause,partition --max-faulty 1
    run tansu-sqlite-idem no --system examples/systems/tansu.toml \
        --nemesis kill,pause,drop-response --idempotence --max-faulty 1
    if [ -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
        run tansu-sqlite-power no --system examples/systems/tansu.toml \
            --nemesis kill,power-loss --lazyfs --max-faulty 1
    else
        table+=("$(printf '%-22s %s' tansu-sqlite-power "SKIPPED: power loss needs /dev/fuse and root")")
    fi
    if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        run tansu-postgres no --system examples/systems/tansu-postgres.toml \
            --nemesis kill,pause,partition
        run tansu-postgres-idem no --system examples/systems/tansu-postgres.toml \
            --nemesis kill,pause,drop-response --idempotence
        # The finding's reproducer (docs/systems.md): INVALID, retries written twice.
        run tansu-pg-idem-pauses no --system examples/systems/tansu-postgres.toml \
            --idempotence --schedule examples/systems/tansu/pause-resume.txt
        # Each broker cut from its storage in turn: valid.
        run tansu-pg-storage-cuts no --system examples/systems/tansu-postgres.toml \
            --idempotence --schedule examples/systems/tansu/storage-cuts.txt
        # The same race by latency on the storage links alone: INVALID, retries written twice.
        run tansu-pg-idem-latency no --system examples/systems/tansu-postgres.toml \
            --idempotence --schedule examples/systems/tansu/storage-latency.txt
        # PostgreSQL itself: killed and restarted (valid), paused (INVALID, the same race).
        run tansu-pg-kill-pg no --system examples/systems/tansu-postgres.toml \
            --idempotence --schedule examples/systems/tansu/postgres-kill.txt
        run tansu-pg-idem-pg-pause no --system examples/systems/tansu-postgres.toml \
            --idempotence --schedule examples/systems/tansu/postgres-pause.txt
    else
        table+=("$(printf '%-22s %s' tansu-postgres "SKIPPED: PostgreSQL is not installed (scripts/install-tansu.sh)")")
    fi
else
    table+=("$(printf '%-22s %s' tansu "SKIPPED: tansu is not installed (scripts/install-tansu.sh installs 0.6.0)")")
fi

echo
echo "external-check ($TIME each):"
printf '  %s\n' "${table[@]}"
exit $status
