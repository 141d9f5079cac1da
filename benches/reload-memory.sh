#!/usr/bin/env bash
# Reload memory without load: start kidsafe on the N-name list, then --reloads times write the
# list plus a new name beside it, rename it over the live file and send SIGHUP; one second after
# status.json shows the new generation, record VmRSS, anonymous memory and VmHWM. RSS after
# reloads should stay near RSS after start: what a reload adds and keeps shows here without
# the answer cache and the load mixing in (see docs/architecture.md, "Memory of reloads").
#
#   benches/reload-memory.sh                    # 1M names, 10 reloads
#   benches/reload-memory.sh --names 200000 --reloads 3
#
# Needs no upstream (only RSS is read). Loopback only; stops what it starts.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAMES=1000000
RELOADS=10
SEED=1
OUT_DIR=$REPO_DIR/bench-out
KIDSAFE_BIN=${KIDSAFE_BIN:-$REPO_DIR/target/release/kidsafe}

while [[ $# -gt 0 ]]; do
  case $1 in
    --names) NAMES=$2; shift 2 ;;
    --reloads) RELOADS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h | --help) echo "usage: $0 [--names N] [--reloads R] [--seed S] [--out DIR]"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ $RELOADS =~ ^[1-9][0-9]*$ && $NAMES =~ ^[0-9]+$ ]] || die "--names and --reloads take positive integers"
[[ -x $KIDSAFE_BIN ]] || die "$KIDSAFE_BIN not found: build kidsafe first (cargo build --release) or set KIDSAFE_BIN"
resolve_python

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
ensure_workload "$OUT_DIR/work-$NAMES-s$SEED" "$NAMES" "$SEED"
RUN=$OUT_DIR/reload-memory-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
configure_server kidsafe full "$RUN/srv"
LIST_FILE=$RUN/srv/kidsafe-lists/adult.txt
STATUS=$RUN/srv/kidsafe-state/status.json

start_server kidsafe "$RUN/srv" || die "kidsafe did not start"
PID=$SERVER_PID
generation() { grep -o '"generation": [0-9]*' "$STATUS" 2>/dev/null | awk '{print $2}' || echo 0; }
sample() {
  awk -v label="$1" '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{printf "| %s | %.1f | %.1f |", label, r/1024, h/1024}' "/proc/$PID/status"
  awk '/^Anonymous:/{printf " %.1f |\n", $2/1024}' "/proc/$PID/smaps_rollup"
}

sleep 1
{
  echo "## Reload memory: kidsafe, $(printf "%'d" "$NAMES") names, $RELOADS reloads, no load"
  echo
  echo "| after | VmRSS (MiB) | VmHWM (MiB) | anonymous (MiB) |"
  echo "|---|---|---|---|"
  sample start
} >"$RUN/report.md"
for ((i = 1; i <= RELOADS; i++)); do
  want=$(($(generation) + 1))
  { cat "$WORKLOAD/blocklist.txt"; echo "zz-reload-marker-$i.com"; } >"$RUN/srv/list.new"
  mv -f "$RUN/srv/list.new" "$LIST_FILE"
  kill -HUP "$PID" 2>/dev/null || die "kidsafe is gone (reload $i)"
  for ((t = 0; t < 1200; t++)); do
    [[ $(generation) -ge $want ]] && break
    sleep 0.1
  done
  [[ $(generation) -ge $want ]] || die "reload $i not applied within 120 s"
  sleep 1
  sample "reload $i" >>"$RUN/report.md"
done
{
  echo
  echo "- build times (ms, from the log): $(grep -o 'build_ms=[0-9]*' "$RUN/srv/stdout.log" | cut -d= -f2 | tr '\n' ' ')"
} >>"$RUN/report.md"
cp "$RUN/report.md" "$OUT_DIR/reload-memory.md"
cat "$RUN/report.md"
log "written $OUT_DIR/reload-memory.md (raw: $RUN)"
