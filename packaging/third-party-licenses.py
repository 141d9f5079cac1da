#!/usr/bin/env python3
"""Write the licence notices of every crate built into /usr/bin/kidsafe.

    packaging/third-party-licenses.py [--target TRIPLE] > third-party-licenses.txt

The crates are the ones Cargo.lock resolves for the `kidsafe` package on TRIPLE (default: this
machine's), following normal and build dependencies (dev-dependencies are not built into the
binary; build dependencies and proc macros are included because code they generate is). For
each one it copies, verbatim, the licence and notice files the crate ships (LICENSE*, LICENCE*,
COPYING*, COPYRIGHT*, NOTICE*, UNLICENSE*, files under LICENSES/, and the manifest's
`license-file`) from the crate's source in Cargo's registry, which `cargo build` has already
downloaded. A text that is byte-for-byte the same as one printed earlier is printed once and
referred to afterwards.

It fails (exit 1, naming the crates) when a crate ships no licence file at all: a crate under
MIT or BSD whose notice we cannot reproduce must not go into a package silently. Such a crate
gets its text in packaging/licenses/<crate>/ by hand, with a SOURCE file saying where it came
from; both are printed.

Run by packaging/build-deb.sh; `cargo metadata` is the only cargo command, with --locked.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OVERRIDES = REPO / "packaging" / "licenses"
LICENCE_NAME = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT|NOTICE|UNLICENSE)([-._].*)?$", re.IGNORECASE)


def host_triple():
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.split(" ", 1)[1].strip()
    sys.exit("error: cannot tell the host target from `rustc -vV`")


def metadata(target):
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "metadata", "--locked", "--format-version", "1", "--filter-platform", target,
           "--manifest-path", str(REPO / "Cargo.toml")]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def built_crates(meta):
    """Package ids reachable from kidsafe through normal and build dependencies."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    packages = {p["id"]: p for p in meta["packages"]}
    root = next(i for i in meta["workspace_members"] if packages[i]["name"] == "kidsafe")
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "build"}:
                todo.append(dep["pkg"])
    seen.discard(root)
    return sorted((packages[i] for i in seen), key=lambda p: (p["name"], p["version"]))


def licence_files(pkg):
    crate_dir = Path(pkg["manifest_path"]).parent
    found = []
    for entry in sorted(crate_dir.iterdir()):
        if entry.is_file() and LICENCE_NAME.match(entry.name):
            found.append(entry)
        elif entry.is_dir() and entry.name in ("LICENSES", "licenses", "LICENSE", "license"):
            found.extend(sorted(p for p in entry.rglob("*") if p.is_file()))
    if pkg.get("license_file"):
        lf = (crate_dir / pkg["license_file"]).resolve()
        if lf.is_file() and lf not in [f.resolve() for f in found]:
            found.append(lf)
    override = OVERRIDES / pkg["name"]
    if override.is_dir():
        found.extend(sorted(p for p in override.iterdir() if p.is_file()))
    return crate_dir, found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", help="Rust target triple (default: this machine's)")
    args = ap.parse_args()
    target = args.target or host_triple()
    meta = metadata(target)
    crates = built_crates(meta)
    kidsafe = next(p for p in meta["packages"] if p["id"] in meta["workspace_members"]
                   and p["name"] == "kidsafe")

    missing, entries = [], []
    for pkg in crates:
        crate_dir, files = licence_files(pkg)
        if not files:
            missing.append(f"{pkg['name']} {pkg['version']} ({pkg.get('license')}, {crate_dir})")
        entries.append((pkg, crate_dir, files))
    if missing:
        print("error: these crates ship no licence file; add the text under "
              "packaging/licenses/<crate>/ (with a SOURCE note):\n  " + "\n  ".join(missing),
              file=sys.stderr)
        return 1

    out = sys.stdout
    rule = "=" * 78
    out.write(f"Third-party software built into kidsafe {kidsafe['version']} ({target})\n{rule}\n\n")
    out.write(
        "/usr/bin/kidsafe is one statically linked program. Besides kidsafe's own code\n"
        "(MIT OR Apache-2.0, see copyright) it contains the following Rust crates, as\n"
        "resolved by Cargo.lock. Each is listed with the licence its Cargo.toml declares,\n"
        "followed by the licence and notice files it ships, verbatim. Generated by\n"
        "packaging/third-party-licenses.py at build time.\n\n")
    width = max(len(f"{p['name']} {p['version']}") for p, _, _ in entries)
    for pkg, _, _ in entries:
        ident = f"{pkg['name']} {pkg['version']}"
        out.write(f"  {ident:<{width}}  {pkg.get('license') or '(see files)'}\n")
    out.write(f"\n{len(entries)} crates.\n")

    printed = {}
    for pkg, crate_dir, files in entries:
        ident = f"{pkg['name']} {pkg['version']}"
        out.write(f"\n\n{rule}\n{ident}\n")
        out.write(f"licence: {pkg.get('license') or '(not declared; see files)'}\n")
        if pkg.get("repository"):
            out.write(f"source: {pkg['repository']}\n")
        for f in files:
            rel = f.relative_to(crate_dir) if f.is_relative_to(crate_dir) else \
                Path("packaging/licenses") / pkg["name"] / f.name
            text = f.read_bytes().decode("utf-8", errors="replace")
            key = text.strip()
            if key in printed:
                out.write(f"\n--- {rel}: the same text as {printed[key]} above\n")
                continue
            printed[key] = f"{ident} {rel}"
            out.write(f"\n--- {rel}\n\n{text.rstrip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
