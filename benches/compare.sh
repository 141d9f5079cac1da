#!/usr/bin/env bash
# Side-by-side benchmark: kidsafe against dnsmasq (as Pi-hole runs it), unbound
# and PowerDNS Recursor, all blocking the same N-name list and forwarding to the
# same loopback NSD.  See benches/README.md for the method and the columns.
#
#   sudo benches/compare.sh                      # 1M names, 3 interleaved runs of 10 s
#   sudo benches/compare.sh --quick              # smoke run: 100k names, 1 run of 5 s
#   sudo benches/compare.sh --only dnsmasq,unbound,pdns-recursor
#   sudo KIDSAFE_BASE_BIN=/path/to/old/kidsafe benches/compare.sh --only kidsafe,kidsafe-base
#                                                # a change against the build before it
#
# Loopback only; every process it starts is stopped on exit.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_SERVERS="kidsafe,kidsafe-ceiling,dnsmasq,unbound,pdns-recursor"
# Known but not run by default: kidsafe-base, a second kidsafe build (KIDSAFE_BASE_BIN).
KNOWN_SERVERS="$ALL_SERVERS,kidsafe-base"
NAMES=1000000
RUNS=3
DURATION=10
SEED=1
FIXED_QPS=5000
ONLY=$ALL_SERVERS
BUILD=0
OUT_DIR=$REPO_DIR/bench-out
KIDSAFE_BIN=${KIDSAFE_BIN:-$REPO_DIR/target/release/kidsafe}

usage() {
  cat <<EOF
usage: $0 [options]
  --names N        listed names (default 1000000; 100000 is the other usual size)
  --runs K         warm max-rate runs per server, interleaved (default 3; median reported)
  --duration S     seconds per warm run and per fixed-rate run (default 10)
  --fixed-qps Q    rate of the latency run (default 5000)
  --only LIST      comma-separated subset of: $KNOWN_SERVERS
  --seed S         workload seed (default 1)
  --quick          smoke run: --names 100000 --runs 1 --duration 5
  --build          run 'cargo build --release --locked' first if \$KIDSAFE_BIN is missing
  --out DIR        output directory (default bench-out/ in the repo)
environment: KIDSAFE_BIN (default target/release/kidsafe), SERVER_CPU (1), CLIENT_CPU (0),
  NSD_PORT (5399), KIDSAFE_PORT (5401), DNSMASQ_PORT (5402), UNBOUND_PORT (5403),
  PDNS_PORT (5404), KIDSAFE_CEILING_PORT (5405), DNSMASQ_CACHE (10000), STARTUP_TIMEOUT (600)
EOF
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --names) NAMES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --fixed-qps) FIXED_QPS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --quick) NAMES=100000 RUNS=1 DURATION=5; shift ;;
    --build) BUILD=1; shift ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
[[ $NAMES =~ ^[0-9]+$ && $RUNS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ && $FIXED_QPS =~ ^[1-9][0-9]*$ ]] \
  || die "--names, --runs, --duration and --fixed-qps take positive integers"

IFS=, read -r -a SERVERS <<<"$ONLY"
for s in "${SERVERS[@]}"; do
  [[ -n ${SERVER_PORT[$s]:-} ]] || die "unknown server '$s' (known: $KNOWN_SERVERS)"
  if [[ $s == kidsafe-base ]]; then
    [[ -x ${KIDSAFE_BASE_BIN:-} ]] || die "kidsafe-base needs KIDSAFE_BASE_BIN, an executable kidsafe"
  fi
done

# ---------------------------------------------------------------- prerequisites
wants_kidsafe=0
for s in "${SERVERS[@]}"; do [[ $s == kidsafe* ]] && wants_kidsafe=1; done
if [[ $wants_kidsafe == 1 && ! -x $KIDSAFE_BIN ]]; then
  if [[ $BUILD == 1 ]]; then
    log "$KIDSAFE_BIN is missing: building it (cargo build --release --locked)"
    (cd "$REPO_DIR" && cargo build --release --locked) || die "cargo build failed"
    [[ -x $KIDSAFE_BIN ]] || die "build finished but $KIDSAFE_BIN is still missing"
  else
    die "$KIDSAFE_BIN not found: build it, pass --build, set KIDSAFE_BIN, or leave kidsafe out with --only"
  fi
fi

pkgs=(dnsperf:dnsperf nsd:nsd ss:iproute2 taskset:util-linux python3:python3)
for s in "${SERVERS[@]}"; do
  case $s in
    dnsmasq) pkgs+=(dnsmasq:dnsmasq) ;;
    unbound) pkgs+=(unbound:unbound) ;;
    pdns-recursor) pkgs+=(pdns_recursor:pdns-recursor) ;;
  esac
done
ensure_packages "${pkgs[@]}"
resolve_python
[[ $(nproc --all) -gt 1 ]] || log "warning: one CPU only: server and client cannot be pinned apart"

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
ensure_workload "$OUT_DIR/work-$NAMES-s$SEED" "$NAMES" "$SEED"
RUN=$OUT_DIR/run-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
log "results and raw dnsperf output: $RUN"

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "names=$NAMES"; echo "runs=$RUNS"; echo "duration=$DURATION"; echo "fixed_qps=$FIXED_QPS"
  echo "seed=$SEED"; echo "servers=$ONLY"
  echo "cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
  echo "ncpu=$(nproc --all)"; echo "server_cpu=$SERVER_CPU"; echo "client_cpu=$CLIENT_CPU"
  echo "kernel=$(uname -r)"
  echo "dnsperf=$(dnsperf -h 2>&1 | awk '/^Version/{print $2; exit}')"
  echo "nsd=$(nsd -v 2>&1 | awk '/^NSD version/{print $3; exit}')"
  echo "workload=$WORKLOAD"
  if [[ $wants_kidsafe == 1 ]]; then
    echo "kidsafe_bin=$KIDSAFE_BIN sha256 $(sha256sum <"$KIDSAFE_BIN" | cut -c1-16)"
    if [[ -n ${KIDSAFE_BASE_BIN:-} ]]; then
      echo "kidsafe_base_bin=$KIDSAFE_BASE_BIN sha256 $(sha256sum <"$KIDSAFE_BASE_BIN" | cut -c1-16)"
    fi
  fi
  echo "listed_hit=$(wc -l <"$WORKLOAD/blocklist-hit.txt")"
  echo "queries_warm=$(wc -l <"$WORKLOAD/queries-warm.txt")"
  echo "queries_cold=$(wc -l <"$WORKLOAD/queries-cold.txt")"
} >"$RUN/run.env"

busy=$(cpu_busy_pct 3)
echo "busy_before=$busy" >>"$RUN/run.env"
[[ $busy -le 5 ]] || log "warning: the machine was ${busy}% busy before the benchmark: results will be noisy"

start_nsd

# ---------------------------------------------------------------- phase 1: start, cold, warm-up
declare -A PID=() OK=()
for s in "${SERVERS[@]}"; do
  m=$RUN/$s
  mkdir -p "$m"
  port=${SERVER_PORT[$s]}
  echo "version=$(server_version "$s")" >"$m/metrics.env"
  echo "port=$port" >>"$m/metrics.env"

  # The process with a one-name list: what it costs without the list.
  configure_server "$s" base "$m/base"
  if start_server "$s" "$m/base"; then
    sleep 1
    read -r rss hwm < <(rss_kib "$SERVER_PID")
    echo "rss_base_kib=$rss" >>"$m/metrics.env"
    echo "startup_base_s=$STARTUP_S" >>"$m/metrics.env"
  else
    echo "status=failed: did not start with a one-name list" >>"$m/metrics.env"
    stop_pid "$SERVER_PID"; forget_pid "$SERVER_PID"
    continue
  fi
  stop_pid "$SERVER_PID"; forget_pid "$SERVER_PID"

  variant=full
  [[ $s == kidsafe-ceiling ]] && variant=hit
  listed=$(wc -l <"$(variant_list "$m" "$variant")")
  echo "listed=$listed" >>"$m/metrics.env"
  configure_server "$s" "$variant" "$m/srv"
  log "$s: starting with $listed listed names on 127.0.0.1:$port (cpu $SERVER_CPU)"
  if ! start_server "$s" "$m/srv"; then
    echo "status=failed: no block answer within ${STARTUP_TIMEOUT:-600}s" >>"$m/metrics.env"
    stop_pid "$SERVER_PID"; forget_pid "$SERVER_PID"
    continue
  fi
  PID[$s]=$SERVER_PID
  log "$s: first block answer after ${STARTUP_S}s"
  echo "startup_s=$STARTUP_S" >>"$m/metrics.env"
  sleep 1
  read -r rss hwm < <(rss_kib "$SERVER_PID")
  echo "rss_idle_kib=$rss" >>"$m/metrics.env"
  echo "hwm_idle_kib=$hwm" >>"$m/metrics.env"

  # Sanity: an allowed name resolves, a subdomain of a listed name is blocked, TCP works.
  checks=""
  "$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$PROBE_ALLOWED" --expect answer --timeout 5 \
    >/dev/null 2>&1 || checks+=" allowed-name-not-resolved"
  "$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$port" --name "www.$PROBE_BLOCKED" --expect nxdomain --timeout 5 \
    >/dev/null 2>&1 || checks+=" subdomain-not-blocked"
  "$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$PROBE_BLOCKED" --expect nxdomain --timeout 5 --tcp \
    >/dev/null 2>&1 || checks+=" no-tcp-block-answer"
  echo "checks=${checks# }" >>"$m/metrics.env"
  [[ -z $checks ]] || log "$s: sanity checks failed:$checks"

  log "$s: cold pass ($(wc -l <"$WORKLOAD/queries-cold.txt") distinct names, every one a cache miss)"
  dnsperf_run "$port" "$m/cold.txt" -d "$WORKLOAD/queries-cold.txt" -n 1 -l 120 -c 10 -q 100 \
    || log "$s: dnsperf cold pass failed"
  log "$s: cold $(dnsperf_qps "$m/cold.txt") QPS; warm-up pass (fills the cache, not measured)"
  dnsperf_run "$port" "$m/warmup.txt" -d "$WORKLOAD/queries-warm.txt" -n 1 -l 120 -c 10 -q 100 \
    || log "$s: dnsperf warm-up failed"
  OK[$s]=1
done

alive() { kill -0 "${PID[$1]}" 2>/dev/null; }

# ---------------------------------------------------------------- phase 2: warm runs, interleaved
for ((r = 1; r <= RUNS; r++)); do
  for s in "${SERVERS[@]}"; do
    [[ -n ${OK[$s]:-} ]] || continue
    if ! alive "$s"; then
      log "$s: died"; echo "status=failed: exited during the warm runs" >>"$RUN/$s/metrics.env"
      unset 'OK[$s]'; continue
    fi
    children_ticks; c0=$CHILD_TICKS
    b0=$(busy_ticks) p0=$(pid_ticks "${PID[$s]}") w0=$(date +%s%N)
    dnsperf_run "${SERVER_PORT[$s]}" "$RUN/$s/warm-$r.txt" -d "$WORKLOAD/queries-warm.txt" \
      -l "$DURATION" -c 10 -q 100 || log "$s: dnsperf warm run $r failed"
    b1=$(busy_ticks) p1=$(pid_ticks "${PID[$s]}") w1=$(date +%s%N)
    children_ticks; c1=$CHILD_TICKS
    # foreign CPU in % of one CPU; the server's own CPU share of its core too
    read -r foreign server_cpu < <(awk -v b=$((b1 - b0)) -v p=$((p1 - p0)) -v c=$((c1 - c0)) \
      -v w=$((w1 - w0)) -v hz="$HZ" 'BEGIN{wall=w/1e9*hz; f=(b-p-c)/wall*100; if (f<0) f=0;
        printf "%.0f %.0f\n", f, p/wall*100}')
    echo "warm-$r foreign_cpu_pct=$foreign server_cpu_pct=$server_cpu" >>"$RUN/$s/cpu.txt"
    log "$s: warm run $r/$RUNS: $(dnsperf_qps "$RUN/$s/warm-$r.txt") QPS (server CPU ${server_cpu}%, other processes ${foreign}% of a CPU)"
  done
done

# ---------------------------------------------------------------- phase 3: latency at a fixed rate
for s in "${SERVERS[@]}"; do
  [[ -n ${OK[$s]:-} ]] || continue
  dnsperf_run "${SERVER_PORT[$s]}" "$RUN/$s/fixed.txt" -d "$WORKLOAD/queries-warm.txt" \
    -l "$DURATION" -Q "$FIXED_QPS" -c 10 -q 100 -v || log "$s: dnsperf fixed-rate run failed"
  log "$s: $FIXED_QPS qps run done"
done

# ---------------------------------------------------------------- phase 4: memory after load, stop
for s in "${SERVERS[@]}"; do
  [[ -n ${OK[$s]:-} ]] || continue
  if alive "$s"; then
    read -r rss hwm < <(rss_kib "${PID[$s]}")
    echo "rss_load_kib=$rss" >>"$RUN/$s/metrics.env"
    echo "hwm_load_kib=$hwm" >>"$RUN/$s/metrics.env"
    echo "status=ok" >>"$RUN/$s/metrics.env"
  else
    echo "status=failed: exited during the run" >>"$RUN/$s/metrics.env"
  fi
  stop_pid "${PID[$s]}"; forget_pid "${PID[$s]}"
done

"$PYTHON" "$BENCH_DIR/report.py" "$RUN" >"$RUN/results.md"
cp "$RUN/results.md" "$OUT_DIR/results.md"
cat "$RUN/results.md"
log "written $OUT_DIR/results.md (raw: $RUN)"
