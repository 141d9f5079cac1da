#!/usr/bin/env bash
# Soak test: kidsafe with a 1M-name list under steady load at ~70 % of the capacity measured
# at the start, for --minutes (default 10), while
#   - it is sent SIGHUP every 10 s (a full reload of config and lists each time), and
#   - once a minute the list file in the watched list directory is replaced by a new version
#     (the full list plus one new name, written beside it and renamed over it, as a feed
#     installer would): kidsafe notices the change itself and reloads; the script times how
#     long until the new name is blocked;
# and samples the server's RSS, open file descriptors and threads every 10 s.
#
# It reports RSS at the start and the end (and the peak), descriptors, answered and lost
# queries and error answers per minute, reloads requested and applied, and latency per minute
# from a low-rate probe stream that runs beside the load (dnsperf 2.10 prints no percentiles
# for a run, but with -v it prints every query's latency): p50, p99 and the p99 drift between
# the first and the last minute.
#
#   sudo benches/soak.sh                    # 10 minutes, 1M names, 70 % of measured capacity
#   sudo benches/soak.sh --minutes 2 --names 100000
#
# Needs a release build (cargo build --release --locked) or KIDSAFE_BIN. Loopback only; the
# helpers in lib.sh (shared with compare.sh) install dnsperf and nsd when missing, generate
# the workload (gen_workload.py) and stop every process started here on exit.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MINUTES=10
NAMES=1000000
LOAD_PCT=70
CAPACITY=
CAPACITY_SECONDS=20
PROBE_QPS=500
HUP_EVERY=10
FEED_EVERY=60
SEED=1
OUT_DIR=$REPO_DIR/bench-out
KIDSAFE_BIN=${KIDSAFE_BIN:-$REPO_DIR/target/release/kidsafe}

usage() {
  cat <<EOF
usage: $0 [options]
  --minutes N        length of the soak (default $MINUTES)
  --names N          listed names (default $NAMES)
  --load-pct P       steady load as a share of the measured capacity (default $LOAD_PCT)
  --capacity QPS     skip the capacity measurement and use this figure
  --probe-qps Q      rate of the latency probe stream (default $PROBE_QPS)
  --hup-every S      seconds between SIGHUPs (default $HUP_EVERY)
  --feed-every S     seconds between list file replacements (default $FEED_EVERY)
  --seed S           workload seed (default $SEED)
  --out DIR          output directory (default bench-out/ in the repo)
environment: KIDSAFE_BIN, SERVER_CPU (1), CLIENT_CPU (0), NSD_PORT (5399), KIDSAFE_PORT (5401)
EOF
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --names) NAMES=$2; shift 2 ;;
    --load-pct) LOAD_PCT=$2; shift 2 ;;
    --capacity) CAPACITY=$2; shift 2 ;;
    --probe-qps) PROBE_QPS=$2; shift 2 ;;
    --hup-every) HUP_EVERY=$2; shift 2 ;;
    --feed-every) FEED_EVERY=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
for v in "$MINUTES" "$NAMES" "$LOAD_PCT" "$PROBE_QPS" "$HUP_EVERY" "$FEED_EVERY" "$SEED" ${CAPACITY:+"$CAPACITY"}; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || die "options take positive integers (got '$v')"
done
[[ $MINUTES -le 1440 ]] || die "--minutes is at most 1440: the soak is meant to be bounded"
[[ -x $KIDSAFE_BIN ]] || die "$KIDSAFE_BIN not found: cargo build --release --locked first, or set KIDSAFE_BIN"

ensure_packages dnsperf:dnsperf nsd:nsd ss:iproute2 taskset:util-linux python3:python3
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
ensure_workload "$OUT_DIR/work-$NAMES-s$SEED" "$NAMES" "$SEED"
RUN=$OUT_DIR/soak-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
log "soak: $MINUTES min, $NAMES names; raw output in $RUN"

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "minutes=$MINUTES"; echo "names=$NAMES"; echo "load_pct=$LOAD_PCT"
  echo "probe_qps=$PROBE_QPS"; echo "hup_every=$HUP_EVERY"; echo "feed_every=$FEED_EVERY"
  echo "cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
  echo "ncpu=$(nproc --all)"; echo "server_cpu=$SERVER_CPU"; echo "client_cpu=$CLIENT_CPU"
  echo "kernel=$(uname -r)"
  echo "dnsperf=$(dnsperf -h 2>&1 | awk '/^Version/{print $2; exit}')"
  echo "kidsafe=$("$KIDSAFE_BIN" --version 2>/dev/null | head -1) sha256 $(sha256sum <"$KIDSAFE_BIN" | cut -c1-16)"
  echo "busy_before_pct=$(cpu_busy_pct 3)"
} >"$RUN/run.env"

start_nsd
port=${SERVER_PORT[kidsafe]}
configure_server kidsafe full "$RUN/srv"
LIST_FILE=$RUN/srv/kidsafe-lists/adult.txt
marker() { echo "zz-soak-feed-$1.com"; }
# The full list plus marker I, written beside the watched directory and renamed into it.
# (The live file starts as a hard link to the workload's list: never write into it.)
write_list() {
  local tmp=$RUN/srv/list.new
  { cat "$WORKLOAD/blocklist.txt"; marker "$1"; } >"$tmp"
  mv -f "$tmp" "$LIST_FILE"
}

log "kidsafe: starting with $NAMES names on 127.0.0.1:$port (cpu $SERVER_CPU)"
start_server kidsafe "$RUN/srv" || die "kidsafe did not start"
PID=$SERVER_PID
echo "startup_s=$STARTUP_S" >>"$RUN/run.env"
log "kidsafe: first block answer after ${STARTUP_S}s; warm-up pass"
dnsperf_run "$port" "$RUN/warmup.txt" -d "$WORKLOAD/queries-warm.txt" -n 1 -l 120 -c 10 -q 100 || true
python3 "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$(marker 1)" --expect noerror --timeout 5 >/dev/null \
  || die "$(marker 1) does not resolve before it is listed (NSD wildcard missing?)"

if [[ -z $CAPACITY ]]; then
  log "capacity: ${CAPACITY_SECONDS}s at full rate"
  dnsperf_run "$port" "$RUN/capacity.txt" -d "$WORKLOAD/queries-warm.txt" -l "$CAPACITY_SECONDS" -c 10 -q 100 || true
  CAPACITY=$(dnsperf_qps "$RUN/capacity.txt" | cut -d. -f1)
  [[ $CAPACITY =~ ^[1-9][0-9]*$ ]] || die "could not measure capacity; see $RUN/capacity.txt"
fi
TARGET=$((CAPACITY * LOAD_PCT / 100))
LOAD_QPS=$((TARGET > PROBE_QPS ? TARGET - PROBE_QPS : 1))
echo "capacity_qps=$CAPACITY" >>"$RUN/run.env"
echo "target_qps=$TARGET" >>"$RUN/run.env"
log "capacity $CAPACITY QPS; soak load $TARGET QPS ($LOAD_QPS load + $PROBE_QPS probe)"

# ---------------------------------------------------------------- background: samples, HUPs, feed
T0=$(date +%s.%N)
since() { awk -v t0="$T0" -v t="$(date +%s.%N)" 'BEGIN{printf "%.1f", t - t0}'; }
sample() {
  local rss hwm thr fds
  read -r rss hwm thr < <(awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^Threads:/{t=$2} END{print r+0, h+0, t+0}' \
    "/proc/$PID/status" 2>/dev/null || echo "0 0 0")
  fds=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  echo "$(since) $rss $hwm $fds $thr"
}
echo "# seconds rss_kib hwm_kib fds threads" >"$RUN/samples.txt"
sample >>"$RUN/samples.txt"

sampler() {
  while kill -0 "$PID" 2>/dev/null; do sleep 10; sample >>"$RUN/samples.txt"; done
}
hupper() {
  while sleep "$HUP_EVERY"; do
    kill -HUP "$PID" 2>/dev/null || break
    echo "$(since) hup" >>"$RUN/events.txt"
  done
}
feeder() {
  local i=1 t0 took
  sleep $((FEED_EVERY / 2)) # between the minute boundaries, off the SIGHUP beat
  while kill -0 "$PID" 2>/dev/null; do
    t0=$(date +%s%N)
    write_list "$i"
    echo "$(since) feed $i" >>"$RUN/events.txt"
    if took=$(python3 "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$(marker "$i")" --expect nxdomain \
        --since "$t0" --timeout 30 --interval 0.05 --pid "$PID" 2>/dev/null); then
      echo "$i $took" >>"$RUN/feed-applied.txt"
    else
      echo "$i never" >>"$RUN/feed-applied.txt"
    fi
    i=$((i + 1))
    sleep $((FEED_EVERY - $(($(date +%s%N) - t0)) / 1000000000)) 2>/dev/null || true
  done
}
: >"$RUN/events.txt"
: >"$RUN/feed-applied.txt"
sampler & STARTED_PIDS+=($!)
hupper & STARTED_PIDS+=($!)
feeder & STARTED_PIDS+=($!)
BACKGROUND=("${STARTED_PIDS[@]: -3}")

# ---------------------------------------------------------------- the load, one minute at a time
# Per minute: the load (no per-query output) and the probe stream, whose every latency goes
# through a histogram of 10 us buckets (one pass, constant memory) into p50/p99/max.
# shellcheck disable=SC2016 # awk's own \$ fields
HIST_AWK='
$1 == ">" { n++; b = int($NF * 100000); if (b > 100000) b = 100000; h[b]++; if ($NF > max) max = $NF; next }
{ print > summary }
END {
  p50 = p99 = "n/a"; c = 0
  for (i = 0; i <= 100000; i++) { c += h[i]
    if (p50 == "n/a" && c >= 0.50 * n) p50 = (i + 1) / 100
    if (p99 == "n/a" && c >= 0.99 * n) { p99 = (i + 1) / 100; break } }
  printf "probe_answers=%d p50_ms=%s p99_ms=%s max_ms=%.3f\n", n, p50, p99, max * 1000
}'
for ((m = 1; m <= MINUTES; m++)); do
  pin "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORKLOAD/queries-warm.txt" -l 60 \
    -Q "$LOAD_QPS" -c 10 -q 200 >"$RUN/load-$m.txt" 2>&1 &
  load_pid=$!
  pin "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORKLOAD/queries-warm.txt" -l 60 \
    -Q "$PROBE_QPS" -c 1 -q 50 -v 2>&1 \
    | awk -v summary="$RUN/probe-$m.txt" "$HIST_AWK" >"$RUN/latency-$m.txt" || true
  wait "$load_pid" || true
  kill -0 "$PID" 2>/dev/null || { log "kidsafe exited during minute $m"; break; }
  log "minute $m/$MINUTES: $(awk '/Queries per second/{q=$4} /Queries lost/{l=$3} END{printf "%.0f QPS, lost %s", q, l}' \
    "$RUN/load-$m.txt"); probe $(cat "$RUN/latency-$m.txt")"
done
for pid in "${BACKGROUND[@]}"; do stop_pid "$pid"; forget_pid "$pid"; done
sample >>"$RUN/samples.txt"
alive=yes
kill -0 "$PID" 2>/dev/null || alive=no
cp "$RUN/srv/kidsafe-state/status.json" "$RUN/status.json" 2>/dev/null || true

python3 - "$RUN" "$alive" >"$RUN/report.md" <<'EOF'
import json, re, sys
run, alive = sys.argv[1:]
env = dict(l.strip().split("=", 1) for l in open(f"{run}/run.env") if "=" in l)

def num(pattern, text, default=0.0):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else default

rows, minutes = [], int(env["minutes"])
for m in range(1, minutes + 1):
    try:
        load = open(f"{run}/load-{m}.txt").read()
        probe = open(f"{run}/probe-{m}.txt").read()
        lat = dict(kv.split("=") for kv in open(f"{run}/latency-{m}.txt").read().split())
    except FileNotFoundError:
        break
    sent = num(r"Queries sent:\s+([0-9]+)", load) + num(r"Queries sent:\s+([0-9]+)", probe)
    done = num(r"Queries completed:\s+([0-9]+)", load) + num(r"Queries completed:\s+([0-9]+)", probe)
    lost = num(r"Queries lost:\s+([0-9]+)", load) + num(r"Queries lost:\s+([0-9]+)", probe)
    bad = sum(int(n) for code, n in re.findall(r"([A-Z]+) ([0-9]+) \(", load + probe)
              if code not in ("NOERROR", "NXDOMAIN"))
    rows.append(dict(m=m, sent=sent, done=done, lost=lost, bad=bad,
                     qps=num(r"Queries per second:\s+([0-9.]+)", load) + num(r"Queries per second:\s+([0-9.]+)", probe),
                     avg=num(r"Average Latency \(s\):\s+([0-9.]+)", load) * 1000,
                     p50=lat.get("p50_ms", "n/a"), p99=lat.get("p99_ms", "n/a"), mx=lat.get("max_ms", "n/a")))

samples = [l.split() for l in open(f"{run}/samples.txt") if not l.startswith("#")]
samples = [(float(t), int(r), int(h), int(f), int(th)) for t, r, h, f, th in samples if int(r) > 0]
def at_minute(m):
    """The sample closest to the end of minute m."""
    return min(samples, key=lambda s: abs(s[0] - 60 * m)) if samples else None

events = open(f"{run}/events.txt").read().split("\n")
hups = sum(1 for e in events if e.endswith(" hup"))
feeds = [l.split() for l in open(f"{run}/feed-applied.txt") if l.strip()]
applied = [float(t) for _, t in feeds if t != "never"]
try:
    status = json.load(open(f"{run}/status.json"))
except (OSError, ValueError):
    status = {}
log = open(f"{run}/srv/stdout.log", errors="replace").read()
reloads = re.findall(r"reloaded config and lists.*?build_ms=([0-9]+)", log)
failed_reloads = len(re.findall(r"reload failed", log))
warnings = len(re.findall(r" (WARN|ERROR) ", log))

mib = lambda k: f"{k / 1024:.1f}"
print(f"## Soak: kidsafe, {int(env['names']):,} names, {minutes} min at {env['load_pct']} % of capacity\n")
print(f"{env['date']}, {env['cpu']} ({env['ncpu']} CPUs, server pinned to CPU {env['server_cpu']}, "
      f"dnsperf {env['dnsperf']} and NSD on CPU {env['client_cpu']}), kernel {env['kernel']}; "
      f"{env['kidsafe']}. Machine {env['busy_before_pct']} % busy before the run.\n")
print(f"Capacity measured first: {int(env['capacity_qps']):,} QPS (dnsperf, full rate, 20 s, warm cache); "
      f"soak load {int(env['target_qps']):,} QPS including a {env['probe_qps']} QPS latency probe. "
      f"SIGHUP every {env['hup_every']} s, the list file replaced every {env['feed_every']} s.\n")
print("| minute | sent | answered | lost | SERVFAIL/other | QPS | avg ms (load) | p50 ms (probe) | p99 ms (probe) | max ms (probe) | RSS MiB | fds |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    s = at_minute(r["m"])
    print(f"| {r['m']} | {r['sent']:,.0f} | {r['done']:,.0f} | {r['lost']:,.0f} | {r['bad']:,} | {r['qps']:,.0f} | "
          f"{r['avg']:.3f} | {r['p50']} | {r['p99']} | {r['mx']} | {mib(s[1]) if s else 'n/a'} | {s[3] if s else 'n/a'} |")
tot = lambda k: sum(r[k] for r in rows)
print()
if samples:
    first, last = samples[0], samples[-1]
    print(f"- RSS: {mib(first[1])} MiB at the start (after warm-up), {mib(last[1])} MiB at the end, "
          f"peak (VmHWM) {mib(last[2])} MiB; min/max over {len(samples)} samples every 10 s: "
          f"{mib(min(s[1] for s in samples))}/{mib(max(s[1] for s in samples))} MiB")
    print(f"- open file descriptors: {first[3]} at the start, {last[3]} at the end, max {max(s[3] for s in samples)}; "
          f"threads {first[4]} -> {last[4]}")
print(f"- queries: {tot('sent'):,.0f} sent, {tot('done'):,.0f} answered, {tot('lost'):,.0f} lost, "
      f"{tot('bad'):,} answers other than NOERROR/NXDOMAIN")
if len(rows) >= 2 and rows[0]["p99"] != "n/a" and rows[-1]["p99"] != "n/a":
    a, b = float(rows[0]["p99"]), float(rows[-1]["p99"])
    print(f"- p99 latency drift (probe, minute 1 -> minute {rows[-1]['m']}): {a} ms -> {b} ms "
          f"({(b - a) / a * 100:+.0f} %)")
print(f"- reloads: {hups} SIGHUPs and {len(feeds)} list replacements sent; {len(reloads)} reloads applied "
      f"(a SIGHUP and a file change close together are one reload), {failed_reloads} failed; "
      f"build time median {sorted(int(x) for x in reloads)[len(reloads) // 2] if reloads else 'n/a'} ms, "
      f"max {max((int(x) for x in reloads), default='n/a')} ms; generation at the end {status.get('generation', 'n/a')}")
if feeds:
    print(f"- list replacements blocked their new name after (s): "
          f"{', '.join(t for _, t in feeds)}" + ("" if len(applied) == len(feeds) else " — some never applied"))
print(f"- server alive at the end: {alive}; WARN/ERROR log lines: {warnings}")
EOF
cp "$RUN/report.md" "$OUT_DIR/soak-results.md"
cat "$RUN/report.md"
log "written $OUT_DIR/soak-results.md (raw: $RUN)"
