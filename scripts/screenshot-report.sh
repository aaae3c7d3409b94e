#!/usr/bin/env bash
# Renders a run's report.html in headless Chromium and saves a PNG screenshot, to look at the
# report as a person would. Usage: scripts/screenshot-report.sh RUN_DIR|report.html [out.png] [height]
# Needs Debian's chromium (`apt-get update && apt-get install -y chromium`). The page is
# self-contained: every flag below keeps Chromium from reaching any network.
set -euo pipefail
target=${1:?usage: scripts/screenshot-report.sh RUN_DIR|report.html [out.png] [height]}
out=${2:-report.png}
height=${3:-3000}
if [ -d "$target" ]; then target="$target/report.html"; fi
[ -f "$target" ] || { echo "screenshot-report: $target not found" >&2; exit 254; }
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "screenshot-report: chromium not installed (apt-get install -y chromium)" >&2; exit 254; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --screenshot="$out" --window-size="1400,$height" \
  "file://$(realpath "$target")" 2>/dev/null
echo "screenshot-report: wrote $out"
