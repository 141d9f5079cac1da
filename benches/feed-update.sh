#!/usr/bin/env bash
# Feed update cost: publish an N-name category with `kidsafe feed publish`, serve it from a
# real HTTP server on 127.0.0.1 (python3 -m http.server), then measure with /usr/bin/time:
#   1. a full update (no snapshot yet)           wall time, peak RSS, bytes downloaded
#   2. a delta update after 1 % of names changed wall time, peak RSS, bytes downloaded
#   3. `kidsafe check` on the installed snapshot (what a reload then builds)
#   4. the daemon's RSS at start and after each of 4 more delta updates (SIGUSR1, reload)
# and the publisher's own time and memory for both versions.
#
#   benches/feed-update.sh                 # 1,000,000 names, 1 % changed
#   benches/feed-update.sh --names 200000 --change 0.05
#
# Loopback only; the HTTP server is stopped on exit.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAMES=1000000
CHANGE=0.01
SEED=1
OUT_DIR=$REPO_DIR/bench-out
KIDSAFE_BIN=${KIDSAFE_BIN:-$REPO_DIR/target/release/kidsafe}

while [[ $# -gt 0 ]]; do
  case $1 in
    --names) NAMES=$2; shift 2 ;;
    --change) CHANGE=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done

[[ -x $KIDSAFE_BIN ]] || die "build first: cargo build --release --locked"
[[ -x /usr/bin/time ]] || die "needs GNU time: apt-get install -y time"

RUN=$OUT_DIR/feed-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"/{lists,www,keys}
log "run directory: $RUN"

ensure_workload "$OUT_DIR/workload-$NAMES-$SEED" "$NAMES" "$SEED"
cp "$WORKLOAD/blocklist.txt" "$RUN/lists/adult.txt"

# timed LABEL CMD...: runs CMD under GNU time; appends "LABEL wall_s max_rss_kib exit" to
# timings.txt.
timed() {
  local label=$1; shift
  local status=0
  /usr/bin/time -f '%e %M' -o "$RUN/time-$label.txt" "$@" >"$RUN/out-$label.txt" 2>&1 || status=$?
  read -r wall rss <"$RUN/time-$label.txt" || true
  printf '%s %s %s %s\n' "$label" "$wall" "$rss" "$status" >>"$RUN/timings.txt"
  log "$label: ${wall}s, peak ${rss} KiB, exit $status"
}

"$KIDSAFE_BIN" feed keygen --out "$RUN/keys" >/dev/null
timed publish-full "$KIDSAFE_BIN" feed publish --key "$RUN/keys/feed.key" \
  --lists "$RUN/lists" --out "$RUN/www" --feed-id bench.kidsafe --expires 7d
cp "$RUN/www/manifest.json" "$RUN/manifest-1.json"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 "$PORT" --directory "$RUN/www" >"$RUN/http.log" 2>&1 &
HTTP_PID=$!
trap 'kill $HTTP_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/manifest.json" >/dev/null 2>&1 && break
  sleep 0.1
done

PUB=$(sed -n 2p "$RUN/keys/feed.pub")
cat >"$RUN/kidsafe.toml" <<EOF
[server]
listen = ["127.0.0.1:0"]
state_dir = "state"

[upstream]
servers = ["127.0.0.1:9"]

[feed]
url = "http://127.0.0.1:$PORT/"
public_key = "$PUB"

[defaults]
profile = "kids"

[profiles.kids]
block = ["adult"]
EOF

timed update-full "$KIDSAFE_BIN" feed update --config "$RUN/kidsafe.toml"
timed check-after-full "$KIDSAFE_BIN" check --config "$RUN/kidsafe.toml"

# Change CHANGE of the names: drop every k-th name, add as many new ones.
python3 - "$RUN/lists/adult.txt" "$CHANGE" <<'EOF'
import sys
path, share = sys.argv[1], float(sys.argv[2])
names = open(path).read().split()
step = max(1, round(1 / share))
kept = [n for i, n in enumerate(names) if i % step != 0]
dropped = len(names) - len(kept)
added = [f"changed-{i}.feed-bench.example" for i in range(dropped)]
open(path, "w").write("\n".join(kept + added) + "\n")
print(f"dropped {dropped}, added {len(added)}", file=sys.stderr)
EOF

timed publish-delta "$KIDSAFE_BIN" feed publish --key "$RUN/keys/feed.key" \
  --lists "$RUN/lists" --out "$RUN/www" --expires 7d
timed update-delta "$KIDSAFE_BIN" feed update --config "$RUN/kidsafe.toml"
timed check-after-delta "$KIDSAFE_BIN" check --config "$RUN/kidsafe.toml"

# The daemon across feed updates: RSS at start (the snapshot installed above), then after
# each of DAEMON_UPDATES more 1 % deltas, each requested with SIGUSR1 and applied by a reload.
DAEMON_UPDATES=${DAEMON_UPDATES:-4}
"$KIDSAFE_BIN" run --config "$RUN/kidsafe.toml" >"$RUN/daemon.log" 2>&1 &
DAEMON_PID=$!
trap 'kill $HTTP_PID $DAEMON_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$RUN/daemon.log" && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$DAEMON_PID/status"; }
echo "daemon-start $(rss)" >"$RUN/daemon-rss.txt"
for i in $(seq "$DAEMON_UPDATES"); do
  python3 - "$RUN/lists/adult.txt" "$CHANGE" "$i" <<'PY'
import sys
path, share, round_ = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
names = open(path).read().split()
step = max(1, round(1 / share))
kept = [n for j, n in enumerate(names) if (j + round_) % step != 0]
added = [f"round{round_}-{k}.feed-bench.example" for k in range(len(names) - len(kept))]
open(path, "w").write("\n".join(kept + added) + "\n")
PY
  "$KIDSAFE_BIN" feed publish --key "$RUN/keys/feed.key" --lists "$RUN/lists" \
    --out "$RUN/www" --expires 7d >/dev/null
  gen=$(grep -c 'reloaded config and lists' "$RUN/daemon.log" || true)
  kill -USR1 "$DAEMON_PID"
  for _ in $(seq 300); do
    [[ $(grep -c 'reloaded config and lists' "$RUN/daemon.log" || true) -gt $gen ]] && break
    sleep 0.1
  done
  sleep 1
  echo "daemon-after-update-$i $(rss)" >>"$RUN/daemon-rss.txt"
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
echo "daemon-peak $hwm" >>"$RUN/daemon-rss.txt"
kill "$DAEMON_PID"
log "daemon RSS (KiB): $(tr '\n' ' ' <"$RUN/daemon-rss.txt")"

full_bytes=$(grep -o '[0-9]* bytes downloaded' "$RUN/out-update-full.txt" | cut -d' ' -f1)
delta_bytes=$(grep -o '[0-9]* bytes downloaded' "$RUN/out-update-delta.txt" | cut -d' ' -f1)
{
  echo "# Feed update, $NAMES names, $(python3 -c "print(f'{$CHANGE:.0%}')") changed"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $("$KIDSAFE_BIN" --version)"
  echo
  echo "| step | wall s | peak RSS MiB | exit | note |"
  echo "|---|---|---|---|---|"
  while read -r label wall rss status; do
    note=""
    case $label in
      update-full) note="$full_bytes bytes downloaded; $(head -1 "$RUN/out-update-full.txt")" ;;
      update-delta) note="$delta_bytes bytes downloaded; $(head -1 "$RUN/out-update-delta.txt")" ;;
    esac
    printf '| %s | %s | %.1f | %s | %s |\n' "$label" "$wall" "$(awk "BEGIN{print $rss/1024}")" "$status" "$note"
  done <"$RUN/timings.txt"
  echo
  echo "Daemon RSS across $DAEMON_UPDATES delta updates (each: SIGUSR1, child process, reload), MiB:"
  echo
  echo "| point | RSS MiB |"
  echo "|---|---|"
  while read -r point kib; do
    printf '| %s | %.1f |\n' "$point" "$(awk "BEGIN{print $kib/1024}")"
  done <"$RUN/daemon-rss.txt"
} | tee "$RUN/report.md"
