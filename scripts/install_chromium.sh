#!/usr/bin/env bash
# Debian's Chromium for the Playwright browser tests; a no-op where it is installed or apt is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "chromium not installed and no apt-get: browser tests will be skipped" >&2; exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
