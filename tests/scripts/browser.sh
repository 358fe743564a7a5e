#!/usr/bin/env bash
# Chromium for the browser tests (driven through Playwright's bundled driver; no browser download).
set -eu
if command -v chromium >/dev/null 2>&1; then echo "Chromium: $(chromium --version 2>/dev/null | head -1)"; exit 0; fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
echo "installing Chromium from Debian packages"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
chromium --version
