#!/usr/bin/env bash
# Reload under load: keep dnsperf running against one server while its block
# list is rewritten (write a new file, rename it over the old one) and the server
# is sent SIGHUP, --reloads times.  Reports answered and lost queries against a
# baseline run of the same length without reloads, the slowest one-second
# interval, memory before/after/peak, and how long one reload takes to apply.
#
#   sudo benches/reload-under-load.sh                       # kidsafe, 1M names, 10 reloads
#   sudo benches/reload-under-load.sh --server unbound      # the same done to unbound
#
# For kidsafe this depends on live reload (SIGHUP, or the list watcher) in the
# daemon.  Loopback only; every process it starts is stopped on exit.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVER=kidsafe
NAMES=1000000
RELOADS=10
DURATION=30
SEED=1
OUT_DIR=$REPO_DIR/bench-out
KIDSAFE_BIN=${KIDSAFE_BIN:-$REPO_DIR/target/release/kidsafe}

usage() {
  cat <<EOF
usage: $0 [--server kidsafe|unbound] [--names N] [--reloads R] [--duration S] [--seed S] [--out DIR]
  defaults: kidsafe, 1000000 names, 10 reloads spread over a 30 s dnsperf run
EOF
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --server) SERVER=$2; shift 2 ;;
    --names) NAMES=$2; shift 2 ;;
    --reloads) RELOADS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
[[ $SERVER == kidsafe || $SERVER == unbound ]] || die "--server takes kidsafe or unbound"
[[ $RELOADS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ && $NAMES =~ ^[0-9]+$ ]] \
  || die "--names, --reloads and --duration take positive integers"
if [[ $SERVER == kidsafe && ! -x $KIDSAFE_BIN ]]; then
  die "$KIDSAFE_BIN not found: build kidsafe first (cargo build --release) or set KIDSAFE_BIN"
fi

pkgs=(dnsperf:dnsperf nsd:nsd ss:iproute2 taskset:util-linux python3:python3)
[[ $SERVER == unbound ]] && pkgs+=(unbound:unbound)
ensure_packages "${pkgs[@]}"
resolve_python

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
ensure_workload "$OUT_DIR/work-$NAMES-s$SEED" "$NAMES" "$SEED"
RUN=$OUT_DIR/reload-$SERVER-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
busy=$(cpu_busy_pct 3)
[[ $busy -le 5 ]] || log "warning: the machine was ${busy}% busy before the benchmark: results will be noisy"
start_nsd

port=${SERVER_PORT[$SERVER]}
configure_server "$SERVER" full "$RUN/srv"
case $SERVER in
  kidsafe) LIST_FILE=$RUN/srv/kidsafe-lists/adult.txt ;;
  unbound) LIST_FILE=$RUN/srv/blocklist.conf ;;
esac

# write_list I: the full list plus marker name I, written beside the live file
# and renamed over it (as editors and feed installers do).
marker() { echo "zz-reload-marker-$1.com"; }
write_list() {
  local tmp=$RUN/srv/list.new   # outside the watched lists dir, same file system
  case $SERVER in
    kidsafe) { cat "$WORKLOAD/blocklist.txt"; marker "$1"; } >"$tmp" ;;
    unbound) { cat "$WORKLOAD/unbound-blocklist.conf"; echo "local-zone: \"$(marker "$1").\" always_nxdomain"; } >"$tmp" ;;
  esac
  mv -f "$tmp" "$LIST_FILE"
}

log "$SERVER: starting with $NAMES names on 127.0.0.1:$port"
start_server "$SERVER" "$RUN/srv" || die "$SERVER did not start"
PIDS=$SERVER_PID
log "$SERVER: first block answer after ${STARTUP_S}s; warm-up pass"
dnsperf_run "$port" "$RUN/warmup.txt" -d "$WORKLOAD/queries-warm.txt" -n 1 -l 120 -c 10 -q 100 || true
"$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$(marker 1)" --expect noerror --timeout 5 >/dev/null \
  || die "marker $(marker 1) is not resolvable before the reloads (NSD wildcard?)"
read -r rss0 _ < <(rss_kib "$PIDS")

# cpu_mark / cpu_since NAME: CPU used by other processes than the server and
# dnsperf during a run, in % of one CPU (see lib.sh), appended to cpu.txt.
cpu_mark() { children_ticks; c0=$CHILD_TICKS; b0=$(busy_ticks); p0=$(pid_ticks "$PIDS"); w0=$(date +%s%N); }
cpu_since() {
  local b1 p1 w1
  b1=$(busy_ticks) p1=$(pid_ticks "$PIDS") w1=$(date +%s%N)
  children_ticks
  awk -v n="$1" -v b=$((b1 - b0)) -v p=$((p1 - p0)) -v c=$((CHILD_TICKS - c0)) -v w=$((w1 - w0)) -v hz="$HZ" \
    'BEGIN{wall=w/1e9*hz; f=(b-p-c)/wall*100; if (f<0) f=0; printf "%s foreign_cpu_pct=%.0f server_cpu_pct=%.0f\n", n, f, p/wall*100}' \
    >>"$RUN/cpu.txt"
}

log "baseline: ${DURATION}s without reloads"
cpu_mark
dnsperf_run "$port" "$RUN/baseline.txt" -d "$WORKLOAD/queries-warm.txt" -l "$DURATION" -c 10 -q 100 -S 1 || true
cpu_since baseline

log "reload run: ${DURATION}s with $RELOADS reloads"
cpu_mark
spawn "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORKLOAD/queries-warm.txt" -l "$DURATION" \
  -c 10 -q 100 -S 1 >"$RUN/reload.txt" 2>&1 &
DNSPERF_PID=$!
STARTED_PIDS+=("$DNSPERF_PID")
gap=$(awk -v d="$DURATION" -v r="$RELOADS" 'BEGIN{printf "%.3f", d / (r + 1)}')
: >"$RUN/hup-times.txt"
for ((i = 1; i <= RELOADS; i++)); do
  sleep "$gap"
  write_list "$i"
  kill -HUP "$PIDS" 2>/dev/null || { log "$SERVER is gone (reload $i)"; break; }
  date +%s.%N >>"$RUN/hup-times.txt"
done
wait "$DNSPERF_PID" || true
forget_pid "$DNSPERF_PID"
cpu_since reload

alive=yes
kill -0 "$PIDS" 2>/dev/null || alive=no
applied=$("$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$(marker "$RELOADS")" --expect nxdomain \
  --timeout 60 2>/dev/null) && applied="yes" || applied="no (marker $(marker "$RELOADS") not blocked after 60 s)"
# RSS once the last reload has been applied: sampled as soon as dnsperf ends, it can catch
# the last build still running (its scratch is then counted as if it were kept).
read -r rss1 hwm1 < <(rss_kib "$PIDS")

# One more reload with no load, timed from SIGHUP to the new name being blocked.
reload_s=n/a
if [[ $alive == yes ]]; then
  write_list $((RELOADS + 1))
  t0=$(date +%s%N)
  kill -HUP "$PIDS"
  reload_s=$("$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$(marker $((RELOADS + 1)))" \
    --expect nxdomain --since "$t0" --timeout 120 --pid "$PIDS" 2>/dev/null) || reload_s="no block within 120 s"
  read -r _ hwm2 < <(rss_kib "$PIDS")
fi

"$PYTHON" - "$RUN" "$SERVER" "$NAMES" "$RELOADS" "$alive" "$applied" "$reload_s" \
  "$rss0" "$rss1" "${hwm2:-$hwm1}" >"$RUN/report.md" <<'EOF'
import re, sys
run, server, names, reloads, alive, applied, reload_s, rss0, rss1, hwm = sys.argv[1:]

def stats(path):
    t = open(path, errors="replace").read()
    g = lambda p: (lambda m: float(m.group(1)) if m else 0.0)(re.search(p, t))
    per_s = [float(x) for x in re.findall(r"^\s*[0-9]+\.[0-9]+: ([0-9.]+)$", t, re.M)]
    return {"sent": g(r"Queries sent:\s+([0-9]+)"), "done": g(r"Queries completed:\s+([0-9]+)"),
            "lost": g(r"Queries lost:\s+([0-9]+)"), "qps": g(r"Queries per second:\s+([0-9.]+)"),
            "min_s": min(per_s) if per_s else None, "per_s": per_s}

b, r = stats(f"{run}/baseline.txt"), stats(f"{run}/reload.txt")
mib = lambda k: f"{int(k) / 1024:.1f}" if k and k != "0" else "n/a"
print(f"## Reload under load: {server}, {int(names):,} names, {reloads} reloads (SIGHUP after a rename)\n")
half = (sorted(b["per_s"])[len(b["per_s"]) // 2] / 2) if b["per_s"] else None
print("| run | sent | answered | lost | QPS | slowest 1 s interval (QPS) | 1 s intervals below half the baseline median |")
print("|---|---|---|---|---|---|---|")
for label, s in (("baseline, no reload", b), (f"{reloads} reload{'s' if reloads != '1' else ''}", r)):
    slow = "n/a" if s["min_s"] is None else f"{s['min_s']:,.0f}"
    below = "n/a" if half is None else f"{sum(1 for x in s['per_s'] if x < half)} of {len(s['per_s'])}"
    print(f"| {label} | {s['sent']:,.0f} | {s['done']:,.0f} | {s['lost']:,.0f} | {s['qps']:,.0f} | {slow} | {below} |")
print()
print(f"- server alive after the reloads: {alive}; last reload applied: {applied}")
unit = " s" if re.fullmatch(r"[0-9.]+", reload_s) else ""
print(f"- one reload without load, SIGHUP to the new name blocked: {reload_s}{unit}")
print(f"- RSS before: {mib(rss0)} MiB, after the reloads: {mib(rss1)} MiB, peak (VmHWM): {mib(hwm)} MiB")
for line in open(f"{run}/cpu.txt"):
    m = re.match(r"(\S+) foreign_cpu_pct=([0-9]+) server_cpu_pct=([0-9]+)", line)
    if m:
        warn = ": other work on the machine, numbers suspect" if int(m.group(2)) > 10 else ""
        print(f"- {m.group(1)} run: server CPU {m.group(3)} %, other processes {m.group(2)} % of a CPU{warn}")
EOF
cp "$RUN/report.md" "$OUT_DIR/reload-results.md"
cat "$RUN/report.md"
log "written $OUT_DIR/reload-results.md (raw: $RUN)"
