#!/usr/bin/env bash
# A short run of scripts/crash.sh (SIGKILL at random moments of every store-changing
# operation, then check, read every image, repeat): the long run is N >= 500 by hand.
set -euo pipefail
exec bash "$(dirname "$0")/../../scripts/crash.sh" "${CRASH_N:-12}"
