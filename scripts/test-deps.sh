#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real, when they are missing:
#   minisign   tests/integration/feed_minisign.rs checks signatures both ways with the real tool
# Called by scripts/test (README's test command) and by .ci/run. Does nothing when everything
# is there; needs root (or sudo) and apt-get only when something is missing.
set -euo pipefail

needed=()
command -v minisign >/dev/null || needed+=(minisign)

if [ ${#needed[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "scripts/test-deps.sh: missing ${needed[*]}, and this is not a Debian system: install them by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "scripts/test-deps.sh: run as root to install ${needed[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "scripts/test-deps.sh: installing ${needed[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${needed[@]}" >/dev/null
