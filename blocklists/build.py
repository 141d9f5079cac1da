#!/usr/bin/env python3
"""Build kidsafe's shipped category lists from the licensed upstream files.

    blocklists/build.py DATA_DIR                 # write blocklists/*.txt and SOURCES.toml
    blocklists/build.py DATA_DIR --check         # exit 1 if the committed files differ

DATA_DIR holds the upstream files as the project's shared data keeps them
(`ut1/blacklists/<name>/domains`, `sinfonietta/<name>-hosts`; see blocklists/README.md for
where each comes from). For every kidsafe category this script

  1. reads each upstream file named for it in SOURCES below, with the rules of kidsafe's own
     list parser (hosts lines, plain names, comments; bare IP addresses and single labels
     skipped; names lower-cased);
  2. applies blocklists/corrections.toml: `remove` takes a name and everything below it out
     of one category, `add` puts names into one, each with its reason; `never_block` names
     (the helplines) and every name above or below them are dropped from every block
     category; `never_in` keeps the names of one upstream white list (UT1 sexual_education)
     from being blocked by a category (adult): neither they nor a parent of theirs may be in it;
  3. drops names already covered by a listed parent in the same category (kidsafe blocks a
     listed name's subdomains, so they add nothing);
  4. writes `<file>.txt`: a header naming the category, then one section per source, each
     with its origin, path, commit and licence, names sorted; and SOURCES.toml, the manifest.

Same inputs, same output, byte for byte: no dates or paths of this machine are written.
Python 3.11 standard library only.
"""

import argparse
import hashlib
import ipaddress
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

UT1_ORIGIN = "UT1 blacklists, Université Toulouse 1 Capitole (mirror olbat/ut1-blacklists)"
UT1_LICENCE = "CC-BY-SA-4.0"
UT1_LICENCE_FILE = "licenses/ut1-cc-by-sa-4-0.pdf"
SF_ORIGIN = "Sinfonietta/hostfiles"
SF_LICENCE = "MIT"
SF_LICENCE_FILE = "licenses/sinfonietta-MIT.txt"

UT1_COMMITS = {
    # The commit of olbat/ut1-blacklists each file was taken from, and its date.
    "default": ("804da92a9177149204d9a3d0c4ab5bd1cafe120d", "2026-08-17"),
    "malware": ("c6387984350c74578d8bd9cb85ce6b828229a55b", "2025-07-13"),
    "phishing": ("10d4b89bd6e9eb9b12e78179d9e156acafb4fd10", "2026-06-08"),
}
SF_COMMIT = ("62631ce2ee373595bbc187623aa5bb7f7a1ad534", "2026-04-23")


@dataclass(frozen=True)
class Source:
    key: str  # "ut1:social_networks", "sinfonietta:social-hosts"
    local: str  # path under DATA_DIR
    origin: str
    path: str  # path in the upstream repository
    licence: str
    licence_file: str
    commit: str
    date: str


def ut1(name: str) -> Source:
    commit, date = UT1_COMMITS.get(name, UT1_COMMITS["default"])
    return Source(
        key=f"ut1:{name}",
        local=f"ut1/blacklists/{name}/domains",
        origin=UT1_ORIGIN,
        path=f"blacklists/{name}/domains",
        licence=UT1_LICENCE,
        licence_file=UT1_LICENCE_FILE,
        commit=commit,
        date=date,
    )


def sinfonietta(name: str) -> Source:
    return Source(
        key=f"sinfonietta:{name}",
        local=f"sinfonietta/{name}",
        origin=SF_ORIGIN,
        path=name,
        licence=SF_LICENCE,
        licence_file=SF_LICENCE_FILE,
        commit=SF_COMMIT[0],
        date=SF_COMMIT[1],
    )


# What ships: (file, kidsafe category, kind, sources in order). The reasoning for every mapping
# is in blocklists/README.md ("How each category is filled"). The file is named by the
# category, so the loader needs no synonym, except `drogue.txt`: a test of the feed's
# canonical form reads `blocklists/drogue.txt` by name; the loader maps `drogue` to drugs.
SOURCES = [
    ("adult.txt", "adult", "block", [sinfonietta("pornography-hosts"), ut1("mixed_adult")]),
    ("dating.txt", "dating", "block", [ut1("dating")]),
    (
        "gambling.txt",
        "gambling",
        "block",
        [sinfonietta("gambling-hosts"), ut1("gambling"), ut1("arjel")],
    ),
    ("violence.txt", "violence", "block", [ut1("agressif"), sinfonietta("snuff-hosts")]),
    ("weapons.txt", "weapons", "block", [ut1("dangerous_material")]),
    ("drogue.txt", "drugs", "block", [ut1("drogue")]),
    ("hate.txt", "hate", "block", [ut1("agressif")]),
    ("social.txt", "social", "block", [ut1("social_networks"), sinfonietta("social-hosts")]),
    ("chat.txt", "chat", "block", [ut1("chat")]),
    ("games.txt", "games", "block", [ut1("games")]),
    ("streaming.txt", "streaming", "block", [ut1("audio-video")]),
    ("shopping.txt", "shopping", "block", [ut1("shopping")]),
    (
        "malware.txt",
        "malware",
        "block",
        [ut1("malware"), ut1("cryptojacking"), ut1("stalkerware")],
    ),
    ("phishing.txt", "phishing", "block", [ut1("phishing")]),
    (
        "bypass.txt",
        "bypass",
        "block",
        [ut1("vpn"), ut1("doh"), ut1("residential-proxies"), ut1("redirector")],
    ),
    ("cheating.txt", "cheating", "block", [ut1("tricheur"), ut1("tricheur_pix")]),
    ("kids.txt", "kids", "allow", [ut1("child")]),
    ("education.txt", "education", "allow", [ut1("educational_games")]),
]

KNOWN_SOURCES = {s.key: s for _, _, _, sources in SOURCES for s in sources}
# White lists read only to keep their names out of a category (corrections.toml `never_in`).
KNOWN_SOURCES["ut1:sexual_education"] = ut1("sexual_education")


class BuildError(Exception):
    pass


# ---- the list parser's rules (src/blocklist/parse.rs), for the formats these files use ----

BOILERPLATE = {"localhost", "localhost.localdomain", "local", "broadcasthost", "localdomain"}
LABEL_BYTES = set(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


def is_ip(word: str) -> bool:
    try:
        ipaddress.ip_address(word.split("%")[0])
        return True
    except ValueError:
        return False


def normalise(word: str):
    """('name', n) | ('skip', why) | ('bad', why), as kidsafe's parser would read one word."""
    name = word.removeprefix("*.").removeprefix(".").removesuffix(".")
    if is_ip(name):
        return "skip", "ip"
    if not name.isascii():
        # No upstream file used here has one; kidsafe would convert it to punycode, this
        # script does not (no IDNA in the standard library), so it refuses to guess.
        raise BuildError(f"internationalised name {word!r}: convert it first")
    name = name.lower()
    if name in BOILERPLATE or name.startswith("ip6-"):
        return "skip", "boilerplate"
    if len(name) > 253:
        return "bad", "too long"
    for label in name.split("."):
        if not label or len(label) > 63 or not set(label.encode()) <= LABEL_BYTES:
            return "bad", "label"
    if "." not in name:
        return "skip", "single label"
    return "name", name


def read_names(path: Path):
    """Names in one upstream file, and counts of skipped and unreadable lines."""
    names, skipped, bad = [], 0, 0
    with path.open(encoding="utf-8") as f:
        for raw in f:
            line = raw.lstrip("\ufeff").strip()
            if not line or line[0] in "#![":
                continue
            for i, ch in enumerate(line):  # a '#' starts a comment at the start of a word
                if ch == "#" and i > 0 and line[i - 1].isspace():
                    line = line[:i].rstrip()
                    break
            if line.startswith("||") and line.endswith("^"):
                words = [line[2:-1]]
            else:
                words = line.split()
                if is_ip(words[0]):
                    words = words[1:]
                elif len(words) > 1:
                    bad += 1
                    continue
            got = [normalise(w) for w in words]
            if any(kind == "bad" for kind, _ in got):
                bad += 1
                continue
            listed = [n for kind, n in got if kind == "name"]
            if listed:
                names.extend(listed)
            else:
                skipped += 1
    return names, skipped, bad


def parents(name: str):
    """The proper ancestors of a name that have at least two labels."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels) - 1)]


def is_at_or_below(name: str, top: str) -> bool:
    return name == top or name.endswith("." + top)


# ---- corrections ----------------------------------------------------------------------------


@dataclass
class Corrections:
    never_block: list = field(default_factory=list)
    never_block_reason: str = ""
    never_in: list = field(default_factory=list)  # (category, source key, reason)
    remove: list = field(default_factory=list)  # (category, [names], reason)
    add: list = field(default_factory=list)  # (category, [names], reason)


def load_corrections(path: Path, categories: set) -> Corrections:
    with path.open("rb") as f:
        doc = tomllib.load(f)
    unknown = set(doc) - {"never_block", "never_in", "remove", "add"}
    if unknown:
        raise BuildError(f"{path}: unknown tables {sorted(unknown)}")
    c = Corrections()
    nb = doc.get("never_block", {})
    c.never_block = [checked_name(n, path) for n in nb.get("names", [])]
    c.never_block_reason = nb.get("reason", "")
    if c.never_block and not c.never_block_reason:
        raise BuildError(f"{path}: never_block needs a reason")
    for entry in doc.get("never_in", []):
        cat, src, reason = entry.get("category"), entry.get("source"), entry.get("reason")
        if cat not in categories or src not in KNOWN_SOURCES or not reason:
            raise BuildError(f"{path}: never_in needs a known category, source and a reason: {entry}")
        c.never_in.append((cat, src, reason))
    for kind in ("remove", "add"):
        for entry in doc.get(kind, []):
            cat, names, reason = entry.get("category"), entry.get("names"), entry.get("reason")
            if set(entry) - {"category", "names", "reason"}:
                raise BuildError(f"{path}: {kind}: unknown keys in {entry}")
            if cat not in categories:
                raise BuildError(f"{path}: {kind}: unknown category {cat!r}")
            if not names or not reason:
                raise BuildError(f"{path}: {kind} in {cat}: names and a reason are required")
            getattr(c, kind).append((cat, [checked_name(n, path) for n in names], reason))
    return c


def checked_name(name: str, path: Path) -> str:
    kind, value = normalise(name)
    if kind != "name" or value != name:
        raise BuildError(f"{path}: {name!r} is not a lower-case host name of two labels or more")
    return name


# ---- the build ------------------------------------------------------------------------------


def build(data: Path, corrections: Corrections, log):
    """{file: bytes} for every list, and the manifest text."""
    outputs, manifest_rows, file_rows = {}, [], []
    for file, category, kind, sources in SOURCES:
        per_source = []  # (source, names in file order, upstream count, skipped, bad, sha256)
        for src in sources:
            path = data / src.local
            if not path.is_file():
                raise BuildError(f"{path}: missing (is {data} the shared data directory?)")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            names, skipped, bad = read_names(path)
            per_source.append((src, names, len(set(names)), skipped, bad, digest))

        # Everything the category would hold, before corrections.
        wanted = set()
        for _, names, *_ in per_source:
            wanted.update(names)

        dropped = []  # (name, why) for the log
        for cat, names, reason in corrections.remove:
            if cat != category:
                continue
            log(f"{category}: remove {', '.join(names)}: {reason}")
            for top in names:
                gone = {n for n in wanted if is_at_or_below(n, top)}
                wanted -= gone
                log(f"    {top}: {len(gone)} listed name(s) taken out")
                still = [p for p in parents(top) if p in wanted]
                if still:
                    raise BuildError(
                        f"corrections: removing {top} from {category} has no effect: "
                        f"{still[0]} is listed and covers it; remove that instead"
                    )
        for cat, src_key, reason in corrections.never_in:
            if cat != category:
                continue
            white, _, _ = read_names(data / KNOWN_SOURCES[src_key].local)
            for w in sorted(set(white)):
                # The white site itself and any listed parent would block it; a listed name
                # below it (one user's page on a big site) does not.
                gone = {n for n in wanted if n == w or n in parents(w)}
                for n in sorted(gone):
                    dropped.append((n, f"never in {category}: {src_key} lists {w}"))
                wanted -= gone
        if kind == "block":
            for h in corrections.never_block:
                gone = {n for n in wanted if is_at_or_below(n, h) or n in parents(h)}
                for n in sorted(gone):
                    dropped.append((n, f"helpline {h}"))
                wanted -= gone
        for n, why in dropped:
            log(f"{category}: dropped {n} ({why})")

        added = []
        for cat, names, reason in corrections.add:
            if cat != category:
                continue
            for n in names:
                if n in wanted:
                    log(f"{category}: add {n}: already listed upstream ({reason})")
                elif any(p in wanted for p in parents(n)):
                    log(f"{category}: add {n}: already covered by a listed parent")
                else:
                    added.append(n)
        if kind == "block":
            for n in added:
                for h in corrections.never_block:
                    if is_at_or_below(n, h) or is_at_or_below(h, n):
                        raise BuildError(f"corrections: add {n} to {category} would block helpline {h}")
        wanted.update(added)

        # Names a listed parent already covers add nothing.
        kept = {n for n in wanted if not any(p in wanted for p in parents(n))}

        # Each kept name goes to the first source that lists it; additions last.
        sections, claimed = [], set()
        for src, names, upstream, skipped, bad, digest in per_source:
            mine = sorted(set(names) & kept - claimed)
            claimed.update(mine)
            sections.append((src, mine, upstream, skipped, bad, digest))
        extra = sorted(kept - claimed)

        text = render(file, category, kind, sections, extra, corrections)
        outputs[file] = text.encode()
        file_rows.append((file, category, kind, len(kept), len(outputs[file])))
        for src, mine, upstream, skipped, bad, digest in sections:
            manifest_rows.append((category, file, src, upstream, skipped, bad, len(mine), digest))
        if extra:
            manifest_rows.append((category, file, None, 0, 0, 0, len(extra), ""))
    return outputs, manifest(file_rows, manifest_rows)


def render(file, category, kind, sections, extra, corrections):
    out = [
        f"# kidsafe category list: {category} ({kind} category)",
        "#",
        "# Built by blocklists/build.py from the upstream lists named in each section below,",
        "# with kidsafe's corrections (blocklists/corrections.toml): normalised to one",
        "# lower-case name a line, bare IP addresses dropped, duplicates and names under a listed",
        "# parent dropped, corrections applied. Do not edit by hand: edit corrections.toml and run",
        "# build.py again. Each section keeps the licence of its source (blocklists/README.md).",
    ]
    for src, names, upstream, _skipped, _bad, _digest in sections:
        out += [
            "",
            f"# --- source: {src.origin}",
            f"# --- path: {src.path}, commit {src.commit[:10]} ({src.date})",
            f"# --- licence: {src.licence} ({src.licence_file}); modified by kidsafe as above",
            f"# --- {len(names)} names here of {upstream} upstream",
        ]
        out += names
    if extra:
        reasons = sorted({r for cat, _, r in corrections.add if cat == category})
        out += [
            "",
            "# --- source: kidsafe corrections (blocklists/corrections.toml), MIT OR Apache-2.0",
        ]
        out += [f"# --- reason: {r}" for r in reasons]
        out += extra
    return "\n".join(out) + "\n"


def manifest(file_rows, rows):
    q = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731
    out = [
        "# Where every shipped list comes from. Generated by blocklists/build.py: do not edit.",
        "#",
        "# [[list]]: one shipped file, its kidsafe category, the names it holds and its size.",
        "# [[source]]: one upstream file that feeds it: origin, path in the upstream repository,",
        "# licence, commit and date, the SHA-256 of the file read, the names it holds upstream",
        "# (after kidsafe's parser rules: IP addresses and single labels skipped, duplicates",
        "# counted once), and the names it contributes to the shipped file (after de-duplication",
        "# against earlier sources, names under a listed parent, and corrections).",
        "",
        f"total_names = {sum(r[3] for r in file_rows)}",
        f"total_bytes = {sum(r[4] for r in file_rows)}",
    ]
    for file, category, kind, names, size in file_rows:
        out += [
            "",
            "[[list]]",
            f"file = {q(file)}",
            f"category = {q(category)}",
            f"kind = {q(kind)}",
            f"names = {names}",
            f"bytes = {size}",
        ]
    for category, file, src, upstream, skipped, bad, shipped, digest in rows:
        out += ["", "[[source]]", f"category = {q(category)}", f"file = {q(file)}"]
        if src is None:
            out += [
                'origin = "kidsafe corrections (blocklists/corrections.toml)"',
                'licence = "MIT OR Apache-2.0"',
                f"shipped = {shipped}",
            ]
            continue
        out += [
            f"origin = {q(src.origin)}",
            f"path = {q(src.path)}",
            f"licence = {q(src.licence)}",
            f"licence_file = {q(src.licence_file)}",
            f"commit = {q(src.commit)}",
            f"date = {q(src.date)}",
            f"sha256 = {q(digest)}",
            f"upstream_names = {upstream}",
            f"lines_skipped = {skipped}",
            f"lines_unreadable = {bad}",
            f"shipped = {shipped}",
        ]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="the shared data directory (holds ut1/ and sinfonietta/)")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write (default: blocklists/)")
    ap.add_argument("--corrections", type=Path, default=HERE / "corrections.toml")
    ap.add_argument("--check", action="store_true", help="compare with the files in --out, write nothing")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    args = ap.parse_args()

    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    try:
        categories = {c for _, c, _, _ in SOURCES}
        corrections = load_corrections(args.corrections, categories)
        outputs, manifest_text = build(args.data, corrections, log)
    except (BuildError, OSError, tomllib.TOMLDecodeError) as e:
        print(f"build.py: {e}", file=sys.stderr)
        return 2
    outputs["SOURCES.toml"] = manifest_text.encode()
    shipped = {f for f, _, _, _ in SOURCES}
    stale = sorted(
        p.name for p in args.out.glob("*.txt") if p.name not in shipped
    )
    if args.check:
        differ = [f for f, b in outputs.items() if not (args.out / f).is_file() or (args.out / f).read_bytes() != b]
        for f in differ + stale:
            print(f"build.py --check: {f} is not what build.py makes", file=sys.stderr)
        return 1 if differ or stale else 0
    for f in stale:
        (args.out / f).unlink()
        log(f"removed {f}: no longer shipped")
    for f, b in outputs.items():
        (args.out / f).write_bytes(b)
    total = sum(len(b) for f, b in outputs.items() if f.endswith(".txt"))
    print(f"wrote {len(outputs) - 1} lists ({total:,} bytes) and SOURCES.toml to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
