#!/usr/bin/env bash
# The PostgreSQL service of tansu-postgres.toml: `postgres.sh DATA PORT`.
# First start: initdb in DATA/pg and Tansu 0.6.0's schema loaded with only a Unix socket open,
# so the TCP port (the harness's readiness check) opens once the tables exist. Every start then
# execs postgres on 127.0.0.1:PORT (fsync and synchronous_commit on: the defaults, stated).
# PostgreSQL refuses to run as root; as root this runs it as the `postgres` user.
set -euo pipefail

DATA="${1:?usage: postgres.sh DATA PORT}"
PORT="${2:?usage: postgres.sh DATA PORT}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCHEMA="$HERE/postgres-schema.sql"
SCHEMA_SHA256=e4941efd0bb20bbadc16db1a8d52d4d3aed10d9f12147fea1a116d47cbce626e

bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/postgres" ] && { echo "$d"; return 0; }
    done
    command -v postgres >/dev/null && { dirname "$(command -v postgres)"; return 0; }
    echo "postgres.sh: PostgreSQL is not installed (scripts/install-tansu.sh installs it)" >&2
    return 1
}
BIN="$(bindir)"

as_postgres=()
if [ "$(id -u)" = 0 ]; then
    as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

PG="$DATA/pg"
if [ ! -f "$PG/PG_VERSION" ]; then
    echo "$SCHEMA_SHA256  $SCHEMA" | sha256sum --check --quiet - \
        || { echo "postgres.sh: $SCHEMA is not Tansu 0.6.0's schema" >&2; exit 1; }
    # A Unix socket path must fit in 107 bytes: the schema is loaded through a short one.
    SOCKETS="$(mktemp -d /tmp/faultline-pg.XXXXXX)"
    trap 'rm -rf "$SOCKETS"' EXIT
    rm -rf "$PG"
    mkdir -p "$PG"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$DATA" "$SOCKETS"
    "${as_postgres[@]}" "$BIN/initdb" -D "$PG" -U postgres --auth=trust --no-sync >"$DATA/initdb.log" 2>&1 \
        || { cat "$DATA/initdb.log" >&2; exit 1; }
    # The schema over a Unix socket only; then a clean stop, so the data is on disk.
    "${as_postgres[@]}" "$BIN/pg_ctl" -D "$PG" -w -l "$DATA/schema-load.log" \
        -o "-c listen_addresses='' -k $SOCKETS -p $PORT" start >/dev/null
    "${as_postgres[@]}" psql -q -v ON_ERROR_STOP=1 -h "$SOCKETS" -p "$PORT" -U postgres \
        -d postgres -f "$SCHEMA" >"$DATA/schema.log" 2>&1 \
        || { cat "$DATA/schema.log" >&2; "${as_postgres[@]}" "$BIN/pg_ctl" -D "$PG" -m fast stop; exit 1; }
    "${as_postgres[@]}" "$BIN/pg_ctl" -D "$PG" -w -m fast stop >/dev/null
    rm -rf "$SOCKETS"
    trap - EXIT
    sync
fi
exec "${as_postgres[@]}" "$BIN/postgres" -D "$PG" -p "$PORT" -c unix_socket_directories= \
    -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200
