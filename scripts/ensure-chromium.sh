#!/bin/sh
# The console tests drive a real headless Chromium (Debian's package; Playwright only drives it, it never
# downloads a browser). Idempotent: does nothing when chromium is already installed.
set -e
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1
