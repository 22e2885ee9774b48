#!/usr/bin/env bash
# The dataset-analysis tests make their own speech with Debian's espeak-ng (calibration
# audio is never downloaded). Installs it once if it is missing.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "espeak-ng is missing and this user cannot install it: run 'apt-get install espeak-ng' as root" >&2
  exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >/dev/null
espeak-ng --version
