#!/usr/bin/env bash
# Installs a Debian package the tests use, once, if its command is missing:
#   scripts/install-debian.sh COMMAND PACKAGE
# The browser tests drive Debian's Chromium (a test tool's own browser download does not
# work on closed networks); the analysis tests make their own speech with espeak-ng
# (calibration audio is never downloaded).
set -euo pipefail
command_name="$1"
package="$2"
if command -v "$command_name" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "$command_name is missing and this user cannot install it: run 'apt-get install $package' as root" >&2
  exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" >/dev/null
"$command_name" --version
