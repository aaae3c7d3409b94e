#!/usr/bin/env bash
# Installs what examples/systems/tansu*.toml run: Tansu 0.6.0 (the pinned version, built from
# crates.io with its PostgreSQL and libsql/SQLite storage engines; ~15-25 min on 2 cores) and
# PostgreSQL from Debian's packages (for tansu-postgres.toml). TANSU_ROOT (default cargo's
# own root, ${CARGO_HOME:-~/.cargo}, whose bin/ rustup puts on PATH) receives bin/tansu; the
# system files run `tansu` from PATH. Safe to run twice.
set -euo pipefail

ROOT="${TANSU_ROOT:-${CARGO_HOME:-$HOME/.cargo}}"

# The system files run `tansu` from PATH: say so when this one is not what PATH finds.
on_path() {
    if [ "$(command -v tansu)" != "$ROOT/bin/tansu" ]; then
        echo "install-tansu: \`tansu\` on PATH is not $ROOT/bin/tansu; the system files run" \
            "\`tansu\` from PATH: export PATH=\"$ROOT/bin:\$PATH\"" >&2
    fi
}

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
    on_path
    exit 0
fi
cargo install --locked tansu --version 0.6.0 --features postgres,libsql --root "$ROOT"
"$ROOT/bin/tansu" --version
on_path
