#!/usr/bin/env python3
"""How well the shipped lists protect, measured through a running kidsafe on loopback.

Two subcommands, used by benches/effectiveness.sh:

  effectiveness.py upstream --port P
      A tiny upstream resolver: answers every query with NOERROR and no records (NODATA), at
      once. kidsafe forwards what it does not block; what comes back does not matter here,
      only that a forwarded name is not a block.

  effectiveness.py measure --port P --client PRESET=127.0.0.31 ... --list SPEC ... --out DIR
      Asks kidsafe every name of every list from every client address (one address per
      preset profile), with bounded concurrency, and tells blocked answers (kidsafe's own
      NXDOMAIN with its synthetic SOA, and the Extended DNS Error "Blocked" naming the
      category) from forwarded ones. Writes DIR/results.tsv (one row per name and preset)
      and DIR/results.md (the tables), and prints the tables.

A list SPEC is LABEL:EXPECTED:PATH[:FORMAT], where EXPECTED is the kidsafe category the
list's names belong to ("none" for names no preset may block) and FORMAT is `domains`
(one name a line, `#` comments; hosts lines work too) or `tsv` (name, category, service:
one list per category found in the file, EXPECTED ignored).

Python 3.11 standard library only. Loopback only.
"""

import argparse
import asyncio
import collections
import random
import struct
import sys
import time
from pathlib import Path

# What each preset blocks (src/policy/presets.rs), to mark which cells are meant to block.
PRESET_BLOCKS = {
    "under-9": {"adult", "dating", "gambling", "violence", "weapons", "drugs", "hate", "social",
                "chat", "games", "shopping", "malware", "phishing", "bypass"},
    "9-12": {"adult", "dating", "gambling", "violence", "weapons", "drugs", "hate", "social",
             "chat", "malware", "phishing", "bypass"},
    "13-15": {"adult", "dating", "gambling", "violence", "weapons", "drugs", "hate", "malware",
              "phishing", "bypass"},
    "16-17": {"adult", "gambling", "drugs", "malware", "phishing"},
    "adult": {"malware", "phishing"},
}

EDE = 15
EDE_BLOCKED = 15
TYPE_A, TYPE_SOA, TYPE_OPT = 1, 6, 41


# ---- the upstream ---------------------------------------------------------------------------

class Responder(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if len(data) < 12 or data[2] & 0x80:
            return
        # The query itself, turned into its answer: QR and RA set, RCODE 0, no records added.
        # Its question and any OPT record (the only additional record kidsafe sends) stay.
        flags = struct.unpack("!H", data[2:4])[0]
        flags = (flags | 0x8080) & 0xFFF0  # QR, RA; NOERROR
        self.transport.sendto(data[:2] + struct.pack("!H", flags) + data[4:], addr)


async def serve_upstream(port):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", port))
    await asyncio.Event().wait()


# ---- DNS messages ---------------------------------------------------------------------------

def build_query(qid, name):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)  # RD, one question, one OPT
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        q += bytes([len(raw)]) + raw
    q += b"\x00" + struct.pack("!HH", TYPE_A, 1)
    # OPT: root name, type 41, UDP size 1232, extended RCODE/version/flags 0, no options.
    return q + b"\x00" + struct.pack("!HHIH", TYPE_OPT, 1232, 0, 0)


def read_name(msg, off):
    """(name, offset after the name in place)."""
    labels, end, jumps = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("pointer loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels).lower(), (end if end is not None else off)


def classify(msg):
    """('blocked', category) | ('forwarded', rcode name) for one answer."""
    qd, an, ns, ar = struct.unpack("!HHHH", msg[4:12])
    rcode = struct.unpack("!H", msg[2:4])[0] & 0xF
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    soa_mname, category = None, None
    for section, count in (("an", an), ("ns", ns), ("ar", ar)):
        for _ in range(count):
            _, off = read_name(msg, off)
            rtype, _rclass, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10
            rdata_at = off
            off += rdlen
            if section == "ns" and rtype == TYPE_SOA:
                soa_mname, _ = read_name(msg, rdata_at)
            if rtype == TYPE_OPT:
                o = rdata_at
                while o + 4 <= rdata_at + rdlen:
                    code, length = struct.unpack("!HH", msg[o:o + 4])
                    data = msg[o + 4:o + 4 + length]
                    o += 4 + length
                    if code == EDE and len(data) >= 2 and struct.unpack("!H", data[:2])[0] == EDE_BLOCKED:
                        text = data[2:].decode("utf-8", "replace")
                        category = text.removeprefix("category=")
    names = {0: "noerror", 2: "servfail", 3: "nxdomain", 5: "refused"}
    if category is not None or (rcode == 3 and soa_mname == "kidsafe.invalid"):
        return "blocked", category or "?"
    return "forwarded", names.get(rcode, str(rcode))


# ---- the client -----------------------------------------------------------------------------

class Client(asyncio.DatagramProtocol):
    """One UDP socket bound to one client address; answers matched by ID."""

    def __init__(self):
        self.waiting = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if len(data) >= 12:
            fut = self.waiting.pop(struct.unpack("!H", data[:2])[0], None)
            if fut is not None and not fut.done():
                fut.set_result(data)


async def ask_all(port, source, names, concurrency, timeout=3.0, tries=3):
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        Client, local_addr=(source, 0), remote_addr=("127.0.0.1", port))
    sem = asyncio.Semaphore(concurrency)
    ids = list(range(65536))
    random.shuffle(ids)
    free = collections.deque(ids)
    results = {}

    async def one(name):
        async with sem:
            for _ in range(tries):
                qid = free.popleft()
                fut = loop.create_future()
                client.waiting[qid] = fut
                transport.sendto(build_query(qid, name))
                try:
                    reply = await asyncio.wait_for(fut, timeout)
                    results[name] = classify(reply)
                    return
                except asyncio.TimeoutError:
                    pass
                finally:
                    client.waiting.pop(qid, None)
                    free.append(qid)
            results[name] = ("forwarded", "timeout")

    await asyncio.gather(*(one(n) for n in names))
    transport.close()
    return results


# ---- lists and report -----------------------------------------------------------------------

def read_domains(path):
    names = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        name = words[-1].strip(".").lower()  # hosts lines: the name is the last word
        if "." in name and all(c.isalnum() or c in "-_." for c in name):
            names.append(name)
    return list(dict.fromkeys(names))


def read_lists(specs):
    """[(label, expected category, [names], origin)]"""
    out = []
    for spec in specs:
        label, expected, rest = spec.split(":", 2)
        path, _, fmt = rest.partition(":")
        fmt = fmt or "domains"
        if fmt == "tsv":
            by_cat = collections.defaultdict(list)
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                if not line or line.startswith("#"):
                    continue
                name, category, *_ = line.split("\t")
                by_cat[category].append(name.strip(".").lower())
            for category, names in by_cat.items():
                out.append((f"{label}: {category}", category, list(dict.fromkeys(names)), path))
        else:
            out.append((label, expected, read_domains(path), path))
    return out


def pct(part, whole):
    return f"{100 * part / whole:.0f} %" if whole else "–"


def report(lists, presets, results):
    """Markdown tables: share blocked per list and preset; blocked-as breakdown; over-blocks."""
    lines = []
    head = "| list (names) | expected | " + " | ".join(presets) + " |"
    lines += [head, "|---|---|" + "---:|" * len(presets)]
    for label, expected, names, _ in lists:
        cells = []
        for preset in presets:
            blocked = sum(1 for n in names if results[preset][n][0] == "blocked")
            meant = expected in PRESET_BLOCKS.get(preset, set())
            cell = pct(blocked, len(names))
            cells.append(f"**{cell}**" if meant else cell)
        lines.append(f"| {label} ({len(names):,}) | {expected} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Bold: the preset blocks the list's category, so the share should be high (100 % minus "
        "it is under-blocking). Plain: the preset does not block that category, so what it "
        "blocks there is blocked for another reason (a name in several categories) or is "
        "over-blocking; `none` (infrastructure) and `helpline` should be 0 % everywhere.",
        "",
    ]
    # Which category blocked what, for the youngest preset.
    first = presets[0]
    lines += [f"Blocked as (preset {first}):", ""]
    for label, _, names, _ in lists:
        got = collections.Counter(results[first][n][1] for n in names if results[first][n][0] == "blocked")
        if got:
            parts = ", ".join(f"{c} {k}" for c, k in got.most_common())
            lines.append(f"- {label}: {parts}")
    lines.append("")
    # Every wrongly blocked name of the lists that must never be blocked.
    wrong = []
    for label, expected, names, _ in lists:
        if expected not in ("none", "helpline"):
            continue
        for n in names:
            hit = [f"{p} ({results[p][n][1]})" for p in presets if results[p][n][0] == "blocked"]
            if hit:
                wrong.append(f"- {n} ({label}): blocked for {', '.join(hit)}")
    lines += ["Names that must never be blocked but were:", ""] + (wrong or ["- none"])
    return "\n".join(lines) + "\n"


async def measure(args):
    presets = []
    sources = {}
    for c in args.client:
        preset, _, addr = c.partition("=")
        if not addr.startswith("127."):
            sys.exit("loopback client addresses only")
        presets.append(preset)
        sources[preset] = addr
    lists = read_lists(args.list)
    every = list(dict.fromkeys(n for _, _, names, _ in lists for n in names))
    started = time.monotonic()
    results = {}
    for preset in presets:
        results[preset] = await ask_all(args.port, sources[preset], every, args.concurrency)
    took = time.monotonic() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.tsv").open("w", encoding="utf-8") as f:
        f.write("list\tname\tpreset\toutcome\tdetail\n")
        for label, _, names, _ in lists:
            for n in names:
                for p in presets:
                    f.write(f"{label}\t{n}\t{p}\t{results[p][n][0]}\t{results[p][n][1]}\n")
    text = report(lists, presets, results)
    (out / "results.md").write_text(text, encoding="utf-8")
    print(text)
    timeouts = sum(1 for p in presets for r in results[p].values() if r == ("forwarded", "timeout"))
    print(f"{len(every):,} names x {len(presets)} presets = {len(every) * len(presets):,} queries "
          f"in {took:.1f} s; {timeouts} timed out", file=sys.stderr)
    return 1 if timeouts else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, required=True)
    me = sub.add_parser("measure")
    me.add_argument("--port", type=int, required=True)
    me.add_argument("--client", action="append", required=True, help="PRESET=127.0.0.x")
    me.add_argument("--list", action="append", required=True, help="LABEL:EXPECTED:PATH[:FORMAT]")
    me.add_argument("--out", required=True)
    me.add_argument("--concurrency", type=int, default=200)
    args = ap.parse_args()
    if args.cmd == "upstream":
        asyncio.run(serve_upstream(args.port))
        return 0
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
