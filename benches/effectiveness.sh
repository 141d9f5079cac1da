#!/usr/bin/env bash
# How well kidsafe protects out of the box, measured on lists it does not ship.
#
#   benches/effectiveness.sh [--data DIR] [--lists DIR] [--out DIR]
#
# Starts the release daemon on the packaged config (packaging/kidsafe.toml) with the lists in
# blocklists/ (or --lists DIR), on 127.0.0.1 only, with one extra profile per age preset and
# one loopback client address for each; its upstream is a tiny local responder, so nothing
# leaves the machine. Then it asks every name of these independent lists from every preset's
# address and reports the share blocked:
#
#   - hagezi/dns-blocklists 2022 (GPL-3.0, read in place from DATA/hagezi-2022, never copied
#     into the repository): doh-vpn-proxy-bypass -> bypass, nosafesearch -> bypass (kidsafe
#     blocks search engines without enforceable safe search as bypass), fake -> phishing
#     (fake shops and scams);
#   - benches/data/infrastructure.txt: names no preset may block;
#   - benches/data/services.tsv: well-known services' hosts with their expected category.
#
# It also measures the daemon: start-up to the first block answer and RSS, once with an empty
# state directory (the lists compiled from scratch) and once more with the compiled-store
# cache in place. Output: bench-out/effectiveness-<time>/ (results.md, results.tsv,
# startup.txt, the config and the logs). Python 3.11 standard library, bash, coreutils.
set -euo pipefail

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
resolve_python

KIDSAFE_BIN=${KIDSAFE_BIN:-$REPO_DIR/target/release/kidsafe}
DATA=$REPO_DIR/../shared/data
LISTS=$REPO_DIR/blocklists
OUT=$REPO_DIR/bench-out/effectiveness-$(date +%Y%m%d-%H%M%S)
PORT=${EFFECTIVENESS_PORT:-5410}
UPSTREAM_PORT=${EFFECTIVENESS_UPSTREAM_PORT:-5411}
SERVER_PORT[effectiveness]=$PORT

while [[ $# -gt 0 ]]; do
  case $1 in
    --data) DATA=$2; shift 2 ;;
    --lists) LISTS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[[ -x $KIDSAFE_BIN ]] || die "no $KIDSAFE_BIN: cargo build --release --locked first"
HAGEZI=$DATA/hagezi-2022/domains
for f in doh-vpn-proxy-bypass.txt nosafesearch.txt fake.txt; do
  [[ -f $HAGEZI/$f ]] || die "no $HAGEZI/$f (pass --data, the shared data directory)"
done
LISTS=$(cd "$LISTS" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
port_in_use "$PORT" && die "port $PORT is in use (EFFECTIVENESS_PORT=...)"
port_in_use "$UPSTREAM_PORT" && die "port $UPSTREAM_PORT is in use (EFFECTIVENESS_UPSTREAM_PORT=...)"

# The packaged config, runnable here: every line changed is named, and the script stops if
# one is no longer in the file (the same lines tests/integration/harness.rs changes).
PACKAGED=$REPO_DIR/packaging/kidsafe.toml
CONFIG=$OUT/kidsafe.toml
cp "$PACKAGED" "$CONFIG"
replace() {
  grep -qF -- "$1" "$CONFIG" || die "packaging/kidsafe.toml no longer holds: $1"
  FROM=$1 TO=$2 "$PYTHON" - "$CONFIG" <<'EOF'
import os, sys
p = sys.argv[1]
s = open(p, encoding="utf-8").read()
open(p, "w", encoding="utf-8").write(s.replace(os.environ["FROM"], os.environ["TO"], 1))
EOF
}
replace 'listen = ["127.0.0.1:53", "[::1]:53"]' "listen = [\"127.0.0.1:$PORT\"]"
replace 'state_dir = "/var/lib/kidsafe"' "state_dir = '$OUT/state'"
replace 'dirs = ["/usr/share/kidsafe/blocklists"]' "dirs = ['$LISTS']"
replace 'servers = ["9.9.9.9:53", "149.112.112.112:53"]' "servers = [\"127.0.0.1:$UPSTREAM_PORT\"]"
replace 'listen = "127.0.0.1:9153"' '# no metrics port in the benchmark'
# One address asks thousands of names a second here; the packaged per-client limit would
# answer most of them REFUSED.
replace 'rate_limit = 200' 'rate_limit = 0'
PRESETS=(under-9 9-12 13-15 16-17 adult)
CLIENT_ARGS=()
{
  echo
  echo "# Added by benches/effectiveness.sh: one profile per preset, one address each."
  for i in "${!PRESETS[@]}"; do
    addr=127.0.0.$((31 + i))
    printf '[profiles.p%d]\npreset = "%s"\n\n[[clients]]\nname = "%s"\nmatch = ["%s"]\nprofile = "p%d"\n\n' \
      "$i" "${PRESETS[$i]}" "${PRESETS[$i]}" "$addr" "$i"
    CLIENT_ARGS+=(--client "${PRESETS[$i]}=$addr")
  done
} >>"$CONFIG"
"$KIDSAFE_BIN" check --config "$CONFIG" >"$OUT/check.txt" 2>&1 || {
  cat "$OUT/check.txt" >&2
  die "kidsafe check refused the benchmark config"
}

"$PYTHON" "$BENCH_DIR/effectiveness.py" upstream --port "$UPSTREAM_PORT" 2>"$OUT/upstream.log" &
STARTED_PIDS+=($!)

# Start-up: spawn to the first block answer (pornhub.com, adult, for 127.0.0.1 = the default
# profile), then RSS; first with an empty state directory, then with the compiled lists
# cached there. lib.sh's start_server pins the daemon to CPU $SERVER_CPU.
PROBE_BLOCKED=pornhub.com
SERVER_CMD=("$KIDSAFE_BIN" run --config "$CONFIG")
: >"$OUT/startup.txt"
for round in cold warm; do
  d=$OUT/$round
  mkdir -p "$d"
  [[ $round == cold ]] && rm -rf "$OUT/state"
  start_server effectiveness "$d" || die "kidsafe did not start; see $d/stdout.log"
  sleep 1 # let the start-up build's memory settle
  read -r rss hwm < <(rss_kib "$SERVER_PID")
  printf '%s start-up %s s, RSS %s KiB (peak %s KiB) after the first answer\n' \
    "$round" "$STARTUP_S" "$rss" "$hwm" | tee -a "$OUT/startup.txt" >&2
  if [[ $round == cold ]]; then
    stop_pid "$SERVER_PID"
    forget_pid "$SERVER_PID"
  fi
done

log "asking every list from every preset's address"
"$PYTHON" "$BENCH_DIR/effectiveness.py" measure --port "$PORT" "${CLIENT_ARGS[@]}" \
  --out "$OUT" \
  --list "hagezi doh-vpn-proxy-bypass:bypass:$HAGEZI/doh-vpn-proxy-bypass.txt" \
  --list "hagezi nosafesearch:bypass:$HAGEZI/nosafesearch.txt" \
  --list "hagezi fake (scam shops):phishing:$HAGEZI/fake.txt" \
  --list "infrastructure:none:$BENCH_DIR/data/infrastructure.txt" \
  --list "services:-:$BENCH_DIR/data/services.tsv:tsv"
read -r rss hwm < <(rss_kib "$SERVER_PID")
printf 'after the measurement RSS %s KiB (peak %s KiB)\n' "$rss" "$hwm" | tee -a "$OUT/startup.txt" >&2
{
  echo
  echo "Daemon: $("$KIDSAFE_BIN" --version 2>/dev/null | head -1), lists $LISTS"
  grep -E 'names stored|^ *[a-z-]+ +[0-9]+' "$OUT/check.txt" | head -1 || true
  cat "$OUT/startup.txt"
} | tee -a "$OUT/results.md"
log "results in $OUT"
