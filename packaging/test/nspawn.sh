#!/usr/bin/env bash
# The package under a real systemd: boots a minimal Debian with systemd-nspawn, installs the
# .deb, and checks what a family or a school relies on. One PASS or FAIL line per check; exit 1
# if any failed, 2 if the test could not run at all.
#
#   sudo packaging/test/nspawn.sh            # builds the packages with packaging/build-deb.sh
#
# Needs root and the Debian packages debootstrap, systemd-container (systemd-nspawn) and
# dpkg-dev. Runs offline once the image exists: the container has its own network namespace
# with loopback only, and a stand-in upstream resolver (fake-upstream.py, 192.0.2.1 for every
# name) for the names kidsafe forwards.
#
# The image, `debootstrap --variant=minbase` of Debian 12 plus systemd, dig, python3 and ip, is
# made once in $KIDSAFE_NSPAWN_CACHE (default /var/cache/kidsafe-nspawn) and never changed:
# the container runs on a throw-away overlay (--volatile=overlay). Delete the directory to
# make it again.
#
# Environment: KIDSAFE_NSPAWN_CACHE, KIDSAFE_NSPAWN_MIRROR (default http://deb.debian.org/debian),
# KIDSAFE_CARGO_LOCK (see packaging/build-deb.sh), KIDSAFE_NSPAWN_KEEP=1 keeps the work
# directory (logs, packages) after the run.
set -Eeuo pipefail
# A setup step that fails stops the test (exit non-zero); cleanup says which one.
last_error=""
trap 'last_error="line $LINENO: $BASH_COMMAND (exit $?)"' ERR
cd "$(dirname "$0")/../.."
repo=$(pwd)

cache="${KIDSAFE_NSPAWN_CACHE:-/var/cache/kidsafe-nspawn}"
mirror="${KIDSAFE_NSPAWN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
image_packages="systemd,systemd-sysv,dbus,bind9-dnsutils,python3-minimal,iproute2"
image="$cache/$suite-minbase-$(printf '%s' "$image_packages" | md5sum | cut -c1-8)"
# The last version that shipped /etc/kidsafe/kidsafe.toml as a conffile: the migration from it
# is tested with a package built from that commit's packaging (and this build's binary).
legacy_commit=26796f7e972d10165685515dfb5bca3488642fbf
machine="kidsafe-test-$$"

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { # check "what" command...: PASS if the command succeeds
    local what="$1"
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
note() { echo "---- $*"; }
skip() { echo "cannot run: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn, debootstrap)"
for tool in systemd-nspawn debootstrap nsenter dpkg-deb timeout flock; do
    command -v "$tool" >/dev/null || skip "$tool not found: apt-get install systemd-container debootstrap dpkg-dev"
done

work=$(mktemp -d /tmp/kidsafe-nspawn.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/pkgs"
nspawn_pid=""
leader=""

cleanup() {
    local rc=$?
    if [ "$rc" != 0 ] && [ "$rc" != 2 ] && [ "$failures" = 0 ] && [ -n "$last_error" ]; then
        echo "FAIL: the test stopped at $last_error"
    fi
    if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
        timeout 20 nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1 || true
    fi
    if [ -n "$nspawn_pid" ]; then
        for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            kill -TERM "$nspawn_pid" 2>/dev/null || true
            sleep 5
            kill -KILL "$nspawn_pid" 2>/dev/null || true
        fi
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if [ "${KIDSAFE_NSPAWN_KEEP:-}" = 1 ] || [ "$rc" != 0 ]; then
        echo "logs and packages kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
note "packages"
cargo_() { if [ -n "${KIDSAFE_CARGO_LOCK:-}" ]; then flock "$KIDSAFE_CARGO_LOCK" "$@"; else "$@"; fi; }
timeout 3600 packaging/build-deb.sh >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; skip "packaging/build-deb.sh failed"; }
deb=$(grep '^== built ' "$work/build.log" | sed 's/^== built \([^ ]*\) .*/\1/')
version=$(dpkg-deb -f "$deb" Version)
cp "$deb" "$work/pkgs/kidsafe-current.deb"
mkdir -p "$work/keep"
cp "$(dirname "$deb")"/kidsafe*_"$version"_*.*deb "$work/keep/"
# The same build with a higher version, for the upgrade: what the next release looks like.
timeout 600 packaging/build-deb.sh --deb-version "$version+nspawn1" --output "$work/next/" >>"$work/build.log" 2>&1 ||
    { tail -n 40 "$work/build.log"; skip "second build (--deb-version) failed"; }
cp "$work"/next/kidsafe_*.deb "$work/pkgs/kidsafe-next.deb"
# 0.1.0-1 as it was shipped (config as a conffile), from its commit's packaging.
if git cat-file -e "$legacy_commit^{commit}" 2>/dev/null; then
    mkdir -p "$work/legacy-src"
    git archive "$legacy_commit" | tar -x -C "$work/legacy-src"
    (cd "$work/legacy-src" && CARGO_TARGET_DIR="$repo/${CARGO_TARGET_DIR:-target}" \
        cargo_ timeout 600 cargo deb --no-build --locked --deb-version 0.1.0-1 --output "$work/legacy/") \
        >>"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; skip "legacy 0.1.0-1 build failed"; }
    cp "$work"/legacy/kidsafe_0.1.0-1_*.deb "$work/pkgs/kidsafe-legacy.deb"
else
    skip "commit $legacy_commit (the last conffile release) is not in this clone: fetch the full history"
fi
# cargo deb deletes every other kidsafe_*.deb in target/debian, even when told --output
# elsewhere: put this build's packages back where build-deb.sh left them.
cp "$work"/keep/* "$(dirname "$deb")/"
cp packaging/test/fake-upstream.py "$work/pkgs/"
echo "$deb ($version), next $version+nspawn1, legacy 0.1.0-1"

# ---------------------------------------------------------------------------------------------
note "image $image"
if [ ! -x "$image/usr/lib/systemd/systemd" ]; then
    mkdir -p "$cache"
    tmp="$image.tmp-$$"
    ok=no
    for attempt in 1 2 3; do
        rm -rf "$tmp"
        if timeout 1200 debootstrap --variant=minbase --include="$image_packages" "$suite" "$tmp" "$mirror" \
            >"$work/debootstrap.log" 2>&1; then
            ok=yes
            break
        fi
        echo "debootstrap attempt $attempt failed:" >&2
        tail -n 5 "$work/debootstrap.log" >&2
        sleep $((attempt * 10))
    done
    [ "$ok" = yes ] || { rm -rf "$tmp"; skip "debootstrap from $mirror failed 3 times"; }
    # Minimal images keep apt's caches; the tests never use the network.
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
    mv "$tmp" "$image"
fi

# ---------------------------------------------------------------------------------------------
note "boot"
systemd-nspawn --quiet --keep-unit --register=no --directory="$image" --volatile=overlay \
    --private-network --machine="$machine" --bind-ro="$work/pkgs:/kidsafe-test" \
    --console=read-only --boot >"$work/console.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 1 60); do
    # nspawn forks once; the container's PID 1 (systemd) is the grandchild.
    for child in $(pgrep -P "$nspawn_pid" 2>/dev/null || true); do
        for grandchild in $(pgrep -P "$child" 2>/dev/null || true); do
            [ "$(cat "/proc/$grandchild/comm" 2>/dev/null)" = systemd ] && leader=$grandchild
        done
        [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ] && leader=$child
    done
    [ -n "$leader" ] && break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 1
done
[ -n "$leader" ] || { cat "$work/console.log"; skip "the container did not start systemd"; }

# ct [timeout] command...: runs in the container (all its namespaces), clean environment.
ct() {
    local t=30
    case "$1" in [0-9]*) t=$1; shift ;; esac
    timeout "$t" nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@" </dev/null
}
state=$(ct 90 systemctl is-system-running --wait 2>&1 || true)
case "$state" in
    running | degraded) pass "container booted (systemd $state)" ;;
    *) cat "$work/console.log"; skip "container systemd state: $state" ;;
esac
[ "$state" = running ] || ct systemctl --failed --no-pager || true

# Helpers, all bounded by ct's timeout.
rcode() { ct 15 dig +time=2 +tries=2 "$@" +noall +comments | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'; }
answer() { ct 15 dig +time=2 +tries=2 "$@" +short | tail -n 1; }
is_rcode() { local want=$1; shift; [ "$(rcode "$@")" = "$want" ]; }
is_answer() { local want=$1; shift; [ "$(answer "$@")" = "$want" ]; }
prop() { ct systemctl show -P "$1" kidsafe; }
is_active() { [ "$(ct systemctl is-active kidsafe)" = active ]; }
generation() { prop StatusText | sed -n 's/^generation \([0-9]*\):.*/\1/p'; }
generation_above() { local g; g=$(generation); [ -n "$g" ] && [ "$g" -gt "$1" ]; }
journal() { ct journalctl -u kidsafe --no-pager -o cat "$@"; }
# grep >/dev/null, not grep -q: with pipefail, grep -q quitting early can fail the pipeline
# (SIGPIPE to the writer) even though it matched.
journal_has() { journal | grep -E "$1" >/dev/null; }
restarted_from() { local p; p=$(prop MainPID); is_active && [ "$p" != 0 ] && [ "$p" != "$1" ]; }
conffiles() { ct dpkg-query -W -f='${Conffiles}' kidsafe; }
no_dpkg_leftovers() { ! ct ls -A /etc/kidsafe | grep dpkg >/dev/null; }
log_clean() { ! grep -Eqi 'conffile|configuration file|dpkg-dist|dpkg-old|dpkg-bak|dpkg-new' "$1"; }
nothing_left() { ! ct ls -d /etc/kidsafe /var/lib/kidsafe /var/lib/private/kidsafe 2>/dev/null | grep . >/dev/null; }
wait_for() { # wait_for SECONDS command...: until the command succeeds
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 1
    done
}
dpkg_i() { ct 180 sh -c "dpkg -i $1 2>&1"; }
purge() { ct 120 sh -c 'dpkg --purge kidsafe 2>&1'; }
conf=/etc/kidsafe/kidsafe.toml

# ---------------------------------------------------------------------------------------------
note "install $version"
if dpkg_i /kidsafe-test/kidsafe-current.deb >"$work/install.log"; then pass "dpkg -i (stdin closed: a prompt would fail)"; else
    cat "$work/install.log"; fail "dpkg -i"; fi
installed=$(ct dpkg-query -W -f='${Status} ${Version}' kidsafe || true)
check "installed: $installed" test "$installed" = "install ok installed $version"
check "no conffiles (the config belongs to the admin)" test -z "$(conffiles)"
check "$conf created from /usr/share/kidsafe/kidsafe.toml" ct cmp -s $conf /usr/share/kidsafe/kidsafe.toml
enabled=$(ct systemctl is-enabled kidsafe || true)/$(ct systemctl is-active kidsafe || true)
check "service installed, neither enabled nor started ($enabled)" test "$enabled" = "disabled/inactive"
check "manual pages installed: kidsafe.toml(5), kidsafe(1), kidsafe-setup(1)" \
    ct test -f /usr/share/man/man5/kidsafe.toml.5.gz -a -f /usr/share/man/man1/kidsafe.1.gz \
    -a -f /usr/share/man/man1/kidsafe-setup.1.gz

# The admin's edits: the stand-in upstream, a list directory of their own, and statistics
# written only at shutdown (so counts in stats.db after the stop prove the stop flush).
ct systemd-run --quiet --unit=fake-upstream python3 /kidsafe-test/fake-upstream.py 127.0.0.1 5300
ct mkdir -p /etc/kidsafe/lists
ct sh -c 'echo initial-malware.test >/etc/kidsafe/lists/malware.txt'
ct sed -i \
    -e 's|^servers = .*|servers = ["127.0.0.1:5300"]|' \
    -e 's|^dirs = \["/usr/share/kidsafe/blocklists"\]|dirs = ["/usr/share/kidsafe/blocklists", "/etc/kidsafe/lists"]|' \
    -e 's|^flush = .*|flush = "1h"|' \
    $conf
ct sh -c "printf '\n# nspawn test: an admin edit\n' >>$conf"
check "the edited config passes kidsafe check" ct kidsafe check --config $conf >/dev/null

# ---------------------------------------------------------------------------------------------
note "start"
if ct 90 systemctl start kidsafe; then pass "systemctl start returned: READY=1 received (Type=notify)"; else
    fail "systemctl start"; journal -n 50; fi
check "active (running)" test "$(prop ActiveState)/$(prop SubState)" = "active/running"
status_line=$(ct systemctl status --no-pager kidsafe | grep 'Status: ' | sed 's/^ *//' || true)
check "STATUS= shown by systemctl status: $status_line" grep -q '^Status: "generation 1: ' <<<"$status_line"

note "DNS"
check "blocked without any upstream: 03log.me NXDOMAIN (adult, bundled list)" is_rcode NXDOMAIN @127.0.0.1 03log.me
check "own list: initial-malware.test NXDOMAIN" is_rcode NXDOMAIN @127.0.0.1 initial-malware.test
check "forwarded: example.org A 192.0.2.1 from the upstream" is_answer 192.0.2.1 @127.0.0.1 example.org A
check "over TCP: example.net A 192.0.2.1" is_answer 192.0.2.1 @127.0.0.1 +tcp example.net A
check "on [::1]:53: 03log.me NXDOMAIN" is_rcode NXDOMAIN @::1 03log.me

# ---------------------------------------------------------------------------------------------
note "reload"
# The daemon also reloads by itself when a watched file changes, so systemctl reload is first
# tested with no edit at all: the generation must still go up (SIGHUP from ExecReload).
gen=$(generation)
if ct 30 systemctl reload kidsafe; then pass "systemctl reload exits 0"; else fail "systemctl reload"; journal -n 20; fi
check "systemctl reload made a new generation (was $gen)" wait_for 10 generation_above "$gen"
check "journal: SIGHUP received: reloading" wait_for 10 journal_has 'SIGHUP received'
check "before the edit: config-edit.test is forwarded" is_answer 192.0.2.1 @127.0.0.1 config-edit.test A
ct sed -i 's|^\[profiles.teen\]$|[profiles.teen]\ndeny = ["config-edit.test"]|' $conf
ct sh -c 'echo added-malware.test >>/etc/kidsafe/lists/malware.txt'
check "systemctl reload after a config edit and a list change" ct 30 systemctl reload kidsafe
check "config edit in force: config-edit.test NXDOMAIN" wait_for 10 is_rcode NXDOMAIN @127.0.0.1 config-edit.test
check "list change in force: added-malware.test NXDOMAIN" wait_for 10 is_rcode NXDOMAIN @127.0.0.1 added-malware.test
ct cp $conf /root/kidsafe.toml.good
ct sh -c "echo 'not_a_key = 1' >>$conf"
if ct 30 systemctl reload kidsafe >"$work/bad-reload.log" 2>&1; then fail "systemctl reload accepted an invalid config"; else
    pass "systemctl reload refuses an invalid config (non-zero exit)"; fi
check "journal: file:line:column and key of the bad edit" wait_for 10 journal_has 'kidsafe.toml:[0-9]+:[0-9]+: .*not_a_key'
check "still active, old rules in force after the bad edit" \
    sh -c "[ \"\$(timeout 10 nsenter -t $leader -a systemctl is-active kidsafe)\" = active ]"
check "still answering: config-edit.test NXDOMAIN" is_rcode NXDOMAIN @127.0.0.1 config-edit.test
ct cp /root/kidsafe.toml.good $conf
check "systemctl reload after the fix" ct 30 systemctl reload kidsafe

# ---------------------------------------------------------------------------------------------
note "sandbox"
pid=$(prop MainPID)
uid=$(ct stat -c %u /proc/"$pid")
check "runs as a dynamic user (uid $uid)" test "$uid" -ge 61184 -a "$uid" -le 65519
check "/var/lib/kidsafe is a link to private/kidsafe" test "$(ct readlink /var/lib/kidsafe)" = private/kidsafe
check "state in /var/lib/private/kidsafe (status.json), owned by the dynamic user" \
    test "$(ct stat -c %u /var/lib/private/kidsafe/status.json)" = "$uid"
caps=$(ct sed -n 's/^CapEff:[[:space:]]*//p' /proc/"$pid"/status)
check "capabilities: CAP_NET_BIND_SERVICE only (CapEff $caps)" test "$caps" = 0000000000000400
check "NoNewPrivs=1, seccomp filter" ct sh -c "grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pid/status &&
    grep -q '^Seccomp:[[:space:]]*2' /proc/$pid/status"
# In the daemon's own mount namespace (the unit's view of the file system): as its uid, and as
# root, to show the mounts themselves are read-only, not just the permissions.
as_daemon() { ct 15 nsenter -t "$pid" -m setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"; }
as_root_in_sandbox() { ct 15 nsenter -t "$pid" -m "$@"; }
check "the daemon can write its state directory" as_daemon sh -c 'echo x >/var/lib/kidsafe/.probe && rm /var/lib/kidsafe/.probe'
for dir in /etc/kidsafe /etc /usr/share/kidsafe /usr/bin /var/lib /var /root /home; do
    err=$(as_root_in_sandbox sh -c "echo x >$dir/.kidsafe-probe" 2>&1) && {
        fail "could write $dir inside the sandbox"
        as_root_in_sandbox rm -f "$dir/.kidsafe-probe"
        continue
    }
    pass "nothing written in $dir inside the sandbox, even as root (${err##*: })"
done
as_daemon sh -c 'echo x >/tmp/.kidsafe-probe' || true
check "its /tmp is private (a file it writes there is not in the host's /tmp)" ct test ! -e /tmp/.kidsafe-probe
# MAC matching reads a neighbour table (default /proc/net/arp), which ProcSubset=pid hides.
alt=$(as_daemon cat /proc/self/net/arp >/dev/null 2>&1 && echo readable || echo unreadable)
reads_arp() { as_daemon cat /proc/net/arp >/dev/null; }
check "the daemon can read /proc/net/arp, the default neighbour table (/proc/self/net/arp: $alt)" reads_arp

# ---------------------------------------------------------------------------------------------
note "MAC matching"
# A neighbour 10.99.0.2 with MAC aa:bb:cc:dd:ee:01 (a static entry on a veth pair in the
# container's network namespace), and the same address on lo so that dig can ask from it.
# The same for IPv6 (fd99::2 at aa:bb:cc:dd:ee:02), which only `ip neigh` lists: that checks
# the `ip` command runs inside the unit's sandbox (the package recommends iproute2).
neighbours() {
    ct ip link add ks0 type veth peer name ks1 && ct ip link set ks0 up && ct ip link set ks1 up &&
        ct ip addr add 10.99.0.1/24 dev ks0 && ct ip addr add 10.99.0.2/32 dev lo &&
        ct ip neigh replace 10.99.0.2 lladdr aa:bb:cc:dd:ee:01 dev ks0 nud permanent &&
        ct ip -6 addr add fd99::1/64 dev ks0 nodad && ct ip -6 addr add fd99::2/128 dev lo nodad &&
        ct ip -6 neigh replace fd99::2 lladdr aa:bb:cc:dd:ee:02 dev ks0 nud permanent
}
check "neighbours 10.99.0.2 at aa:bb:cc:dd:ee:01, fd99::2 at aa:bb:cc:dd:ee:02 (veth, static)" neighbours
check "no rule yet: 10.99.0.2 gets [defaults] profile, example-bad.com forwarded" \
    is_answer 192.0.2.1 @127.0.0.1 -b 10.99.0.2 example-bad.com A
check "no rule yet: fd99::2 gets [defaults] profile, example-bad.com forwarded" \
    is_answer 192.0.2.1 @::1 -b fd99::2 example-bad.com A
ct sh -c "printf '\n[[clients]]\nname = \"nspawn test tablet\"\nmatch = [\"aa:bb:cc:dd:ee:01\", \"aa:bb:cc:dd:ee:02\"]\nprofile = \"child\"\n' >>$conf"
ct 30 systemctl reload kidsafe || fail "systemctl reload with a MAC rule"
check "rule by MAC: 10.99.0.2 gets profile child, example-bad.com NXDOMAIN (neighbours re-read every 10 s)" \
    wait_for 30 is_rcode NXDOMAIN @127.0.0.1 -b 10.99.0.2 example-bad.com
check "rule by MAC over IPv6 (ip neigh): fd99::2 gets profile child, example-bad.com NXDOMAIN" \
    wait_for 30 is_rcode NXDOMAIN @::1 -b fd99::2 example-bad.com
check "other addresses keep [defaults] profile: example-bad.com forwarded from 127.0.0.1" \
    is_answer 192.0.2.1 @127.0.0.1 example-bad.com A
ct cp /root/kidsafe.toml.good $conf
ct 30 systemctl reload kidsafe || fail "systemctl reload without the MAC rule"

# ---------------------------------------------------------------------------------------------
note "watchdog"
restarts=$(prop NRestarts)
ct systemctl kill --kill-whom=main --signal=SIGSTOP kidsafe
note "main pid $pid stopped (SIGSTOP); WatchdogSec $(prop WatchdogUSec), waiting up to 120 s"
if wait_for 120 restarted_from "$pid"; then
    pass "the stalled daemon was restarted (pid $pid -> $(prop MainPID), NRestarts $restarts -> $(prop NRestarts))"
else
    fail "no restart within 120 s of SIGSTOP"; journal -n 20
fi
check "journal: watchdog timeout" wait_for 10 journal_has '[Ww]atchdog timeout'
check "answering again: 03log.me NXDOMAIN" is_rcode NXDOMAIN @127.0.0.1 03log.me

# ---------------------------------------------------------------------------------------------
note "stop"
for i in $(seq 1 20); do rcode @127.0.0.1 "q$i.03log.me" >/dev/null || true; done
if ct 60 systemctl stop kidsafe; then pass "systemctl stop"; else fail "systemctl stop"; fi
stopped="$(prop ActiveState)/$(prop Result)/$(prop ExecMainStatus)"
check "stopped cleanly (ActiveState/Result/exit status: $stopped)" test "$stopped" = "inactive/success/0"
stop_logged() { journal_has 'SIGTERM received' && journal -n 30 | grep 'INFO stopped' >/dev/null; }
check "journal: SIGTERM received, then stopped" wait_for 10 stop_logged
check "stats.db present after the stop" ct test -s /var/lib/private/kidsafe/stats.db
stats=$(ct kidsafe stats --config $conf 2>&1 || true)
check "the queries since the restart were flushed at stop (flush = 1h): $(grep -m1 'profile teen' <<<"$stats" | sed 's/^ *//')" \
    grep -Eq 'profile teen: [1-9][0-9,]* blocked' <<<"$stats"

# ---------------------------------------------------------------------------------------------
note "upgrade to $version+nspawn1 with the edited config, service running"
ct 90 systemctl start kidsafe || fail "systemctl start before the upgrade"
sum_before=$(ct md5sum $conf)
if dpkg_i /kidsafe-test/kidsafe-next.deb >"$work/upgrade.log"; then pass "dpkg -i of the next version exits 0 (stdin closed)"; else
    cat "$work/upgrade.log"; fail "dpkg -i upgrade"; fi
check "no conffile prompt or message" log_clean "$work/upgrade.log"
check "upgraded ($(ct dpkg-query -W -f='${Version}' kidsafe))" test "$(ct dpkg-query -W -f='${Version}' kidsafe)" = "$version+nspawn1"
check "the admin's config unchanged" test "$(ct md5sum $conf)" = "$sum_before"
check "no .dpkg-* files in /etc/kidsafe" no_dpkg_leftovers
check "service active after the upgrade" wait_for 30 is_active
check "the edits still in force: config-edit.test NXDOMAIN" wait_for 10 is_rcode NXDOMAIN @127.0.0.1 config-edit.test

# ---------------------------------------------------------------------------------------------
note "purge"
if purge >"$work/purge.log"; then pass "dpkg --purge"; else cat "$work/purge.log"; fail "dpkg --purge"; fi
for path in /usr/bin/kidsafe /usr/lib/systemd/system/kidsafe.service /etc/kidsafe/kidsafe.toml \
    /var/lib/kidsafe /var/lib/private/kidsafe; do
    if ct test -e "$path" -o -L "$path"; then fail "left after purge: $path"; else pass "gone after purge: $path"; fi
done
check "the admin's own file is kept: /etc/kidsafe/lists/malware.txt" ct test -f /etc/kidsafe/lists/malware.txt
check "dpkg knows nothing of kidsafe" sh -c "! timeout 10 nsenter -t $leader -a dpkg-query -W kidsafe >/dev/null 2>&1"
ct rm -rf /etc/kidsafe

# ---------------------------------------------------------------------------------------------
note "upgrade from 0.1.0-1 (the config was a conffile), config edited"
dpkg_i /kidsafe-test/kidsafe-legacy.deb >"$work/legacy.log" || { cat "$work/legacy.log"; fail "installing 0.1.0-1"; }
check "0.1.0-1 has $conf as a conffile" grep -q "$conf" <<<"$(conffiles)"
ct sh -c "printf '\n# edited under 0.1.0-1\n' >>$conf"
sum_before=$(ct md5sum $conf)
if dpkg_i /kidsafe-test/kidsafe-current.deb >"$work/legacy-upgrade.log"; then pass "dpkg -i $version over 0.1.0-1 exits 0 (stdin closed)"; else
    cat "$work/legacy-upgrade.log"; fail "dpkg -i over 0.1.0-1"; fi
check "no conffile prompt or message" log_clean "$work/legacy-upgrade.log"
check "the edited config kept where it was, unchanged" test "$(ct md5sum $conf)" = "$sum_before"
check "no .dpkg-* files in /etc/kidsafe" no_dpkg_leftovers
check "dpkg no longer has a conffile, not even an obsolete one" test -z "$(conffiles)"
if purge >>"$work/purge.log"; then pass "dpkg --purge"; else fail "dpkg --purge"; fi
check "nothing left: /etc/kidsafe, /var/lib/kidsafe, /var/lib/private/kidsafe" nothing_left

note "upgrade from 0.1.0-1, config not edited"
dpkg_i /kidsafe-test/kidsafe-legacy.deb >>"$work/legacy.log" || fail "installing 0.1.0-1"
if dpkg_i /kidsafe-test/kidsafe-current.deb >"$work/legacy-upgrade2.log"; then pass "dpkg -i $version over 0.1.0-1"; else
    cat "$work/legacy-upgrade2.log"; fail "dpkg -i over 0.1.0-1"; fi
check "the unedited old example is replaced by the new one" ct cmp -s $conf /usr/share/kidsafe/kidsafe.toml
check "no .dpkg-* files in /etc/kidsafe" no_dpkg_leftovers
check "no conffile" test -z "$(conffiles)"
if purge >>"$work/purge.log"; then pass "dpkg --purge"; else fail "dpkg --purge"; fi
check "nothing left: /etc/kidsafe, /var/lib/kidsafe, /var/lib/private/kidsafe" nothing_left

# ---------------------------------------------------------------------------------------------
if [ "$failures" != 0 ]; then
    note "kidsafe's journal (last 60 lines)"
    journal -n 60 || true
    echo "nspawn test: $failures FAILED"
    exit 1
fi
echo "nspawn test: all passed"
