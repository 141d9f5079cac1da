# shellcheck shell=bash disable=SC2034  # globals here are read by the sourcing scripts
# Shared helpers for compare.sh and reload-under-load.sh: sourced, not run.
#
# Everything here talks to 127.0.0.1 only and remembers every process it starts,
# so that the EXIT trap (bench_cleanup) can stop exactly those processes.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

SERVER_CPU=${SERVER_CPU:-1}      # the server under test
CLIENT_CPU=${CLIENT_CPU:-0}      # dnsperf and NSD
NSD_PORT=${NSD_PORT:-5399}
DNSMASQ_CACHE=${DNSMASQ_CACHE:-10000}   # Pi-hole's default cache-size

# Loopback ports of the servers under test.
declare -A SERVER_PORT=(
  [kidsafe]=${KIDSAFE_PORT:-5401}
  [dnsmasq]=${DNSMASQ_PORT:-5402}
  [unbound]=${UNBOUND_PORT:-5403}
  [pdns-recursor]=${PDNS_PORT:-5404}
  [kidsafe-ceiling]=${KIDSAFE_CEILING_PORT:-5405}
  [kidsafe-base]=${KIDSAFE_BASE_PORT:-5406}
)

# The kidsafe binary a server name runs: kidsafe-base is another build (KIDSAFE_BASE_BIN, e.g.
# the one before a change), measured in the same run as this one.
kidsafe_bin_of() {
  case $1 in
    kidsafe-base) echo "${KIDSAFE_BASE_BIN:?set KIDSAFE_BASE_BIN to measure kidsafe-base}" ;;
    *) echo "$KIDSAFE_BIN" ;;
  esac
}

# The interpreter itself, not a version-manager shim: a pyenv shim costs 0.2 s
# and more per start, which would show up in start-up times and stall runs.
PYTHON=python3
resolve_python() {
  PYTHON=$(python3 -c 'import sys; print(sys.executable)') || die "python3 does not run"
}

STARTED_PIDS=()
POLICY_RC_CREATED=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# pin CPU CMD...: run CMD pinned to CPU when the machine has more than one.
pin() {
  local cpu=$1; shift
  if [[ $(nproc --all) -gt 1 ]] && command -v taskset >/dev/null; then
    taskset -c "$cpu" "$@"
  else
    "$@"
  fi
}

# spawn CPU CMD...: for "spawn CPU cmd &": exec replaces the background subshell,
# so $! is the server's own PID (what we signal, and what /proc/PID/status measures).
spawn() {
  local cpu=$1; shift
  if [[ $(nproc --all) -gt 1 ]] && command -v taskset >/dev/null; then
    exec taskset -c "$cpu" "$@"
  fi
  exec "$@"
}

# stop_pid PID: TERM, wait up to 10 s, then KILL.  Only for PIDs we started.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${STARTED_PIDS[$i]}
    [[ -n $pid ]] && stop_pid "$pid"
  done
  if [[ $POLICY_RC_CREATED == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# forget_pid PID: after stopping a server ourselves.
forget_pid() {
  local pid=$1 i
  for i in "${!STARTED_PIDS[@]}"; do
    [[ ${STARTED_PIDS[$i]} == "$pid" ]] && unset 'STARTED_PIDS[i]'
  done
  STARTED_PIDS=("${STARTED_PIDS[@]}")
}

port_in_use() { [[ -n $(ss -Hlntu "( sport = :$1 )" 2>/dev/null) ]]; }

# ---------------------------------------------------------------- packages

# ensure_packages CMD:PKG...: install the Debian packages whose command is missing.
ensure_packages() {
  local want=() item cmd pkg
  for item in "$@"; do
    cmd=${item%%:*} pkg=${item#*:}
    command -v "$cmd" >/dev/null 2>&1 || want+=("$pkg")
  done
  [[ ${#want[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing ${want[*]}: run as root (or install them) first"
  command -v apt-get >/dev/null || die "missing ${want[*]} and no apt-get"
  log "installing ${want[*]}"
  # The packages' maintainer scripts would start system services on port 53
  # (dnsmasq on every interface).  Deny service starts for the install, as
  # Debian's policy-rc.d mechanism allows, unless a policy already exists.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from kidsafe benches/lib.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  local missing=() p
  for p in "${want[@]}"; do
    if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then missing+=("$p"); fi
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "apt has no candidate for ${missing[*]}; running apt-get update"
    apt-get update -qq || true
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >&2; then
    log "install failed; running apt-get update and retrying"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >&2 \
      || die "could not install ${want[*]}"
  fi
  if [[ $POLICY_RC_CREATED == 1 ]]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
  # On a machine with systemd, do not leave the freshly installed resolvers
  # enabled on port 53 for the next boot: the benchmark runs its own copies.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    for p in "${want[@]}"; do
      case $p in
        dnsmasq | unbound | nsd | pdns-recursor)
          log "disabling the $p system service (installed only for the benchmark)"
          systemctl disable --now "$p" >/dev/null 2>&1 || true ;;
      esac
    done
  fi
}

# ---------------------------------------------------------------- workload

# ensure_workload DIR NAMES SEED: (re)generate unless DIR already holds it.
ensure_workload() {
  local dir=$1 names=$2 seed=$3
  if [[ -f $dir/workload.json ]] && "$PYTHON" - "$dir/workload.json" "$names" "$seed" "$NSD_PORT" \
      "$BENCH_DIR/gen_workload.py" <<'EOF'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
a = m["args"]
sha = hashlib.sha256(open(sys.argv[5], "rb").read()).hexdigest()
ok = (m.get("generator_sha256") == sha and a["names"] == int(sys.argv[2])
      and a["seed"] == int(sys.argv[3]) and a["upstream_port"] == int(sys.argv[4]))
sys.exit(0 if ok else 1)
EOF
  then
    log "reusing workload in $dir"
  else
    log "generating workload: $names names, seed $seed -> $dir"
    rm -rf "$dir"
    "$PYTHON" "$BENCH_DIR/gen_workload.py" --out "$dir" --names "$names" --seed "$seed" \
      --upstream-port "$NSD_PORT" || die "workload generation failed"
  fi
  # shellcheck disable=SC1091
  source "$dir/probes.env"
  WORKLOAD=$dir
}

# ---------------------------------------------------------------- NSD

start_nsd() {
  port_in_use "$NSD_PORT" && die "port $NSD_PORT is in use (set NSD_PORT)"
  rm -f "$WORKLOAD/nsd/nsd.pid" "$WORKLOAD/nsd/xfrd.state" "$WORKLOAD/nsd/zone.list"
  nsd-checkconf "$WORKLOAD/nsd.conf" || die "nsd.conf rejected"
  spawn "$CLIENT_CPU" nsd -d -c "$WORKLOAD/nsd.conf" >"$WORKLOAD/nsd/stdout.log" 2>&1 &
  NSD_PID=$!
  STARTED_PIDS+=("$NSD_PID")
  "$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$NSD_PORT" --name "$PROBE_ALLOWED" --expect answer \
    --timeout 60 --pid "$NSD_PID" >/dev/null || die "NSD did not answer; see $WORKLOAD/nsd/"
  "$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$NSD_PORT" --name "$PROBE_BLOCKED" --expect answer \
    --timeout 5 >/dev/null || die "NSD does not resolve the listed probe name $PROBE_BLOCKED"
  log "NSD up on 127.0.0.1:$NSD_PORT (pid $NSD_PID, cpu $CLIENT_CPU)"
}

# ---------------------------------------------------------------- servers

# server_list_file NAME VARIANT: the plain list a variant uses.
#   full  - the N-name list;  base - the one probe name (to measure the
#   process without a list);  hit - only the listed names the warm queries use.
variant_list() {
  case $2 in
    full) echo "$WORKLOAD/blocklist.txt" ;;
    hit) echo "$WORKLOAD/blocklist-hit.txt" ;;
    base) printf '%s\n' "$PROBE_BLOCKED" >"$1/base-list.txt"; echo "$1/base-list.txt" ;;
  esac
}

# configure_server NAME VARIANT DIR: write the config; sets SERVER_CMD (array).
configure_server() {
  local name=$1 variant=$2 d=$3 port=${SERVER_PORT[$1]} list
  rm -rf "$d"; mkdir -p "$d"
  list=$(variant_list "$d" "$variant")
  case $name in
    kidsafe | kidsafe-ceiling | kidsafe-base)
      mkdir -p "$d/kidsafe-lists" "$d/kidsafe-state"
      ln -f "$list" "$d/kidsafe-lists/adult.txt" 2>/dev/null || cp "$list" "$d/kidsafe-lists/adult.txt"
      cat >"$d/kidsafe.toml" <<EOF
# Generated by benches/compare.sh
[server]
listen = ["127.0.0.1:$port"]
allow_clients = ["127.0.0.0/8"]
block_response = "nxdomain"
state_dir = "$d/kidsafe-state"
# The whole load comes from one address; the peers have no per-client limit either.
rate_limit = 0

[upstream]
servers = ["127.0.0.1:$NSD_PORT"]
timeout = "2s"

[lists]
dirs = ["$d/kidsafe-lists"]

[defaults]
profile = "all"

[profiles.all]
block = ["adult"]
EOF
      SERVER_CMD=("$(kidsafe_bin_of "$name")" run --config "$d/kidsafe.toml") ;;
    dnsmasq)
      if [[ $variant == full ]]; then
        ln -sf "$WORKLOAD/dnsmasq.conf" "$d/blocklist.conf"
      else
        sed 's|.*|address=/&/|' "$list" >"$d/blocklist.conf"
      fi
      cat >"$d/dnsmasq.conf" <<EOF
# Generated by benches/compare.sh: dnsmasq as Pi-hole runs it (address=/name/ -> NXDOMAIN).
port=$port
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
server=127.0.0.1#$NSD_PORT
cache-size=$DNSMASQ_CACHE
pid-file=
user=root
conf-file=$d/blocklist.conf
EOF
      SERVER_CMD=(dnsmasq -k --conf-file="$d/dnsmasq.conf") ;;
    unbound)
      if [[ $variant == full ]]; then
        ln -sf "$WORKLOAD/unbound-blocklist.conf" "$d/blocklist.conf"
      else
        sed 's|.*|local-zone: "&." always_nxdomain|' "$list" >"$d/blocklist.conf"
      fi
      cat >"$d/unbound.conf" <<EOF
# Generated by benches/compare.sh: unbound forwarding to the loopback NSD.
server:
    interface: 127.0.0.1
    port: $port
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "$d"
    pidfile: "$d/unbound.pid"
    logfile: ""
    use-syslog: no
    verbosity: 0
    num-threads: 1
    module-config: "iterator"
    do-not-query-localhost: no
    outgoing-interface: 127.0.0.1
    msg-cache-size: 64m
    rrset-cache-size: 128m
    include: "$d/blocklist.conf"
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@$NSD_PORT
EOF
      SERVER_CMD=(unbound -d -c "$d/unbound.conf") ;;
    pdns-recursor)
      if [[ $variant == full ]]; then
        ln -sf "$WORKLOAD/rpz.zone" "$d/rpz.zone"
      else
        { printf '$TTL 3600\n@ IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 3600\n@ IN NS localhost.\n'
          sed 's|.*|& CNAME .\n*.& CNAME .|' "$list"; } >"$d/rpz.zone"
      fi
      # Root hints that point only at loopback (where dont-query stops them), so
      # priming never leaves the machine; all real work goes to the forwarder.
      printf '. 3600000 NS a.root.bench.\na.root.bench. 3600000 A 127.0.0.1\n' >"$d/root.hints"
      printf 'rpzFile("%s", {policyName="kidsafe-bench"})\n' "$d/rpz.zone" >"$d/recursor.lua"
      cat >"$d/recursor.conf" <<EOF
# Generated by benches/compare.sh: PowerDNS Recursor, RPZ, forwarding to the loopback NSD.
config-dir=$d
socket-dir=$d
local-address=127.0.0.1
local-port=$port
allow-from=127.0.0.0/8
threads=1
pdns-distributes-queries=no
reuseport=no
daemon=no
write-pid=no
disable-syslog=yes
loglevel=4
quiet=yes
forward-zones=.=127.0.0.1:$NSD_PORT
hint-file=$d/root.hints
query-local-address=127.0.0.1
dnssec=off
qname-minimization=no
security-poll-suffix=
aggressive-nsec-cache-size=0
lua-config-file=$d/recursor.lua
EOF
      SERVER_CMD=(pdns_recursor --config-dir="$d") ;;
    *) die "unknown server $name" ;;
  esac
}

server_version() {
  case $1 in
    kidsafe | kidsafe-ceiling | kidsafe-base) "$(kidsafe_bin_of "$1")" --version 2>/dev/null | head -1 || echo kidsafe ;;
    dnsmasq) dnsmasq -v | head -1 | awk '{print "dnsmasq " $3}' ;;
    unbound) unbound -V | awk '/^Version/{print "unbound " $2}' ;;
    pdns-recursor) pdns_recursor --version 2>&1 | grep -o 'Recursor [0-9.]*' | head -1 | sed 's/^/PowerDNS /' ;;
  esac
}

# start_server NAME DIR: spawn pinned, wait for the block answer.
# Sets SERVER_PID and STARTUP_S; returns non-zero if it never blocked.
start_server() {
  local name=$1 d=$2 port=${SERVER_PORT[$1]} t0 probe i sf=$2/spawned
  port_in_use "$port" && die "port $port ($name) is in use"
  # The prober starts first and waits for the spawn time, so the clock starts at
  # the spawn and not when the Python interpreter happens to be ready.
  rm -f "$sf" "$sf.ready" "$sf.tmp"
  "$PYTHON" "$BENCH_DIR/dnsprobe.py" --port "$port" --name "$PROBE_BLOCKED" --expect nxdomain \
    --start-file "$sf" --timeout "${STARTUP_TIMEOUT:-600}" >"$d/startup.txt" 2>"$d/probe.err" &
  probe=$!
  STARTED_PIDS+=("$probe")
  for ((i = 0; i < 1000; i++)); do [[ -e $sf.ready ]] && break; sleep 0.01; done
  t0=$(date +%s%N)
  spawn "$SERVER_CPU" "${SERVER_CMD[@]}" >"$d/stdout.log" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  echo "$t0 $SERVER_PID" >"$sf.tmp" && mv "$sf.tmp" "$sf"
  if wait "$probe"; then
    forget_pid "$probe"
    STARTUP_S=$(cat "$d/startup.txt")
    return 0
  fi
  forget_pid "$probe"
  log "$name never gave the block answer: $(cat "$d/probe.err"); log tail:"
  tail -5 "$d/stdout.log" >&2
  return 1
}

# cpu_busy_pct SECONDS: share of all CPUs busy over SECONDS (steal counts as busy),
# to notice other work on the machine before a benchmark starts.
cpu_busy_pct() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat)
  sleep "$1"
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); busy=y[1]-x[1]; idle=y[2]-x[2];
    printf "%.0f\n", (busy+idle) ? 100*busy/(busy+idle) : 0}'
}

# Foreign CPU: how much CPU time went to processes other than the server under
# test and dnsperf during a run (another build, a cron job).  Irq/softirq time is
# left out on both sides: the kernel books loopback packet work there.
HZ=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$9; exit}' /proc/stat; }
pid_ticks() { awk '{sub(/^.*\) /, ""); print $12+$13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# children_ticks: set CHILD_TICKS to the CPU ticks of this shell's finished
# children (dnsperf), from `times`.  Call it directly: a pipe or $(...) would run
# `times` in a subshell, which has no children.
children_ticks() {
  times >"${TMPDIR:-/tmp}/kidsafe-bench-times.$$"
  CHILD_TICKS=$(awk -v hz="$HZ" 'NR==2{t=0; for(i=1;i<=2;i++){split($i,a,/[ms]/); t+=a[1]*60+a[2]}; printf "%.0f\n", t*hz}' "${TMPDIR:-/tmp}/kidsafe-bench-times.$$")
  rm -f "${TMPDIR:-/tmp}/kidsafe-bench-times.$$"
}

# rss_kib PID -> "VmRSS VmHWM" in KiB
rss_kib() {
  awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r+0, h+0}' "/proc/$1/status" 2>/dev/null || echo "0 0"
}

# dnsperf_run PORT OUTFILE ARGS...: dnsperf pinned to the client CPU, bounded.
dnsperf_run() {
  local port=$1 out=$2; shift 2
  pin "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" "$@" >"$out" 2>&1
}

# dnsperf_field FILE NAME: one number from a dnsperf summary.
dnsperf_qps() { awk '/Queries per second:/{print $4}' "$1"; }
