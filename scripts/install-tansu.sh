#!/usr/bin/env bash
# Installs Tansu 0.6.0, the pinned version examples/systems/tansu.toml describes, with the
# storage engines a system file can use (PostgreSQL for several brokers, libsql/SQLite for one).
# TANSU_ROOT (default /work/tools/tansu) receives bin/tansu. Safe to run twice.
set -euo pipefail

ROOT="${TANSU_ROOT:-/work/tools/tansu}"
if [ -x "$ROOT/bin/tansu" ] && "$ROOT/bin/tansu" --version 2>/dev/null | grep -q '0\.6\.0'; then
    echo "tansu 0.6.0 already at $ROOT/bin/tansu"
    exit 0
fi
cargo install --locked tansu --version 0.6.0 --features postgres,libsql --root "$ROOT"
"$ROOT/bin/tansu" --version
