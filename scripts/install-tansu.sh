#!/usr/bin/env bash
# Installs what examples/systems/tansu*.toml run: Tansu 0.6.0 (the pinned version, built from
# crates.io with its PostgreSQL and libsql/SQLite storage engines; ~15-25 min on 2 cores) and
# PostgreSQL from Debian's packages (for tansu-postgres.toml). TANSU_ROOT (default
# /work/tools/tansu) receives bin/tansu. Safe to run twice.
set -euo pipefail

ROOT="${TANSU_ROOT:-/work/tools/tansu}"

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    if command -v apt-get >/dev/null; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
        # The harness starts its own PostgreSQL per run; Debian's default cluster is not needed.
        $SUDO service postgresql stop >/dev/null 2>&1 || true
    else
        echo "install-tansu: PostgreSQL is missing and apt-get is not available" >&2
        exit 1
    fi
fi
echo "postgresql: $(ls -d /usr/lib/postgresql/*/bin | head -1)"

if [ -x "$ROOT/bin/tansu" ] && "$ROOT/bin/tansu" --version 2>/dev/null | grep -q '0\.6\.0'; then
    echo "tansu 0.6.0 already at $ROOT/bin/tansu"
    exit 0
fi
cargo install --locked tansu --version 0.6.0 --features postgres,libsql --root "$ROOT"
"$ROOT/bin/tansu" --version
