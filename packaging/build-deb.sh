#!/usr/bin/env bash
# Build the Debian package: target/debian/kidsafe_<version>_<arch>.deb, and its debug symbols
# as kidsafe-dbgsym_<version>_<arch>.ddeb (a router does not need them).
#
#   packaging/build-deb.sh [cargo-deb options, e.g. --deb-version 0.1.0-2+test1 --output DIR]
#
# Needs: Rust (rustup, Cargo.toml rust-version), a C compiler, cargo-deb
# (`cargo install cargo-deb --locked`), dpkg-dev, binutils (objcopy), python3.
#
# Maintainer field. The package names whoever is answerable for this build:
#   KIDSAFE_DEB_MAINTAINER="Name <address>"   if set, else
#   DEBFULLNAME and DEBEMAIL                  (the variables Debian's tools use), else
#   Cargo.toml's [package.metadata.deb] maintainer, the project's own address.
# Anyone who builds packages for others (a school district, a distributor) sets their own
# address, so bug reports reach the people who built and shipped the package.
#
# On a machine where builds share a lock, KIDSAFE_CARGO_LOCK=/path runs each cargo command
# under `flock /path` (leave it unset if the caller already holds that lock).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo_() {
    if [ -n "${KIDSAFE_CARGO_LOCK:-}" ]; then
        flock "$KIDSAFE_CARGO_LOCK" "$@"
    else
        "$@"
    fi
}
die() { echo "build-deb: $*" >&2; exit 1; }

for tool in cargo dpkg-deb dpkg-parsechangelog objcopy python3 gzip; do
    command -v "$tool" >/dev/null || die "$tool not found (see docs/install.md, 'Prerequisites')"
done
cargo deb --version >/dev/null 2>&1 || die "cargo-deb not found: cargo install cargo-deb --locked"

version_override=no
for arg in "$@"; do
    case "$arg" in --deb-version* | --deb-revision*) version_override=yes ;; esac
done

maintainer="${KIDSAFE_DEB_MAINTAINER:-}"
if [ -z "$maintainer" ] && [ -n "${DEBEMAIL:-}" ]; then
    maintainer="${DEBFULLNAME:+$DEBFULLNAME }<$DEBEMAIL>"
fi
maintainer_args=()
[ -z "$maintainer" ] || maintainer_args=(--maintainer "$maintainer")

# Generated assets (Cargo.toml's [package.metadata.deb] assets name them): the notices of every
# crate in the binary, made from Cargo.lock, and the manual pages, made from the CLI's
# definition. They are made on each build and not committed.
mkdir -p packaging/generated
cargo_ python3 packaging/third-party-licenses.py >packaging/generated/third-party-licenses.txt.new
mv packaging/generated/third-party-licenses.txt.new packaging/generated/third-party-licenses.txt
gzip -9nf -k packaging/generated/third-party-licenses.txt
# The command's manual pages, kidsafe(1) and one per subcommand, from the same clap definition
# the binary parses with (examples/man.rs; clap_mangen is a dev-dependency, so this is a debug
# build of the example, which CI has already built the dependencies for).
rm -rf packaging/generated/man
cargo_ cargo run --locked --quiet --example man -- packaging/generated/man >/dev/null
[ -f packaging/generated/man/kidsafe.1 ] || die "examples/man.rs wrote no kidsafe.1"

started=$(date +%s)
cargo_ cargo build --release --locked
built=$(date +%s)
out=$(cargo_ cargo deb --no-build --locked "${maintainer_args[@]}" "$@")
echo "$out"
deb=$(printf '%s\n' "$out" | grep '\.deb$' | tail -n 1)
[ -f "$deb" ] || die "cargo deb did not say where the package is"

version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
if [ "$version_override" = no ]; then
    logged=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
    [ "$logged" = "$version" ] ||
        die "$deb is version $version but packaging/debian/changelog starts with $logged: add an entry"
fi

# What cargo-deb 3.8 leaves out, added by unpacking and repacking its output:
# - md5sums in both packages (dpkg --verify, debsums);
# - the debug-symbols package gets what dh_strip would give it: Depends on the exact kidsafe
#   version it belongs to (not Recommends), /usr/share/doc/kidsafe-dbgsym as a link to
#   kidsafe's (copyright, changelog), and priority optional instead of the obsolete "extra"
#   (lintian: no-copyright-file, no-changelog, priority-extra-is-replaced-by-priority-optional).
repack() { # repack PACKAGE [edit command...]: the edit runs in the unpacked tree
    local pkg=$1 work
    shift
    work=$(mktemp -d)
    dpkg-deb -R "$pkg" "$work/root"
    if [ $# -gt 0 ]; then (cd "$work/root" && "$@"); fi
    (cd "$work/root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
        xargs -0 --no-run-if-empty md5sum >DEBIAN/md5sums)
    chmod 0644 "$work/root/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$work/root" "$pkg" >/dev/null
    rm -rf "$work"
}
dbgsym_fixes() {
    sed -i -e 's/^Priority: extra$/Priority: optional/' \
        -e "s/^Recommends: kidsafe (= [^)]*)$/Depends: kidsafe (= $version)/" DEBIAN/control
    grep -q "^Depends: kidsafe (= $version)$" DEBIAN/control || die "dbgsym control: no Depends line"
    mkdir -p usr/share/doc
    ln -s kidsafe usr/share/doc/kidsafe-dbgsym
}
repack "$deb"
ddeb="$(dirname "$deb")/kidsafe-dbgsym_${version}_${arch}.ddeb"
[ ! -f "$ddeb" ] || repack "$ddeb" dbgsym_fixes

# Sizes, for docs/install.md.
binary_size=$(dpkg-deb --fsys-tarfile "$deb" | tar -tvf - ./usr/bin/kidsafe | awk '{print $3}')
lists_size=$(dpkg-deb --fsys-tarfile "$deb" | tar -tvf - --wildcards './usr/share/kidsafe/blocklists/*' |
    awk '{s += $3} END {print s}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "== built $deb (cargo build: $((built - started)) s)"
echo "   package $(mib "$(stat -c %s "$deb")"), installed $(dpkg-deb -f "$deb" Installed-Size) KiB:" \
    "/usr/bin/kidsafe $(mib "$binary_size") stripped" \
    "(target/release/kidsafe $(mib "$(stat -c %s "${CARGO_TARGET_DIR:-target}/release/kidsafe")")," \
    "lists $(mib "$lists_size"))"
[ ! -f "$ddeb" ] || echo "   debug symbols $ddeb $(mib "$(stat -c %s "$ddeb")")"
