#!/usr/bin/env bash
# Headless Chromium for the Web UI test (test/web-ui.e2e.test.ts): Debian's `chromium` package,
# installed when missing and when we may (root with apt-get). Prints the browser's path, or
# nothing when it cannot be had (the test then says why it did not run).
set -uo pipefail
for c in "${DT_CHROMIUM:-}" chromium chromium-browser google-chrome; do
  [[ -n "$c" ]] && command -v "$c" >/dev/null 2>&1 && { command -v "$c"; exit 0; }
done
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup-chromium] installing Debian's chromium (apt-get)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >&2 \
    && command -v chromium && exit 0
fi
echo "[setup-chromium] no chromium: install Debian's chromium package or set DT_CHROMIUM" >&2
exit 0
