#!/usr/bin/env python3
"""Generate a deterministic workload for the side-by-side DNS filter benchmark.

Everything is derived from one seed (``--seed``, default 1): the same arguments
always give byte-identical files.  Python 3.11 standard library only.

Files written into ``--out DIR``:

  blocklist.txt            N unique listed names, one per line, sorted (plain domains)
  blocklist-hit.txt        only the listed names that queries-warm.txt touches
                           (exact names, and the listed parent of each subdomain
                           query): the small list of the "kidsafe-ceiling" row
  dnsmasq.conf             address=/name/ per listed name (NXDOMAIN, subdomains too)
  unbound-blocklist.conf   local-zone: "name." always_nxdomain
  rpz.zone                 RPZ zone for PowerDNS Recursor: name CNAME . and *.name CNAME .
  nsd/root.zone            the stand-in "internet": NSD is authoritative for the root
                           zone; explicit A records for every allowed query name, and
                           wildcards under every public suffix so listed names resolve
                           too (a server that fails to block answers NOERROR, not NXDOMAIN)
  nsd.conf                 NSD on 127.0.0.1:--upstream-port, RRL off, one server process
  queries-warm.txt         dnsperf input ("name A"): ~30 % listed names or random
                           subdomains of listed names, ~70 % allowed names drawn with a
                           Zipf-like repeat distribution from a pool of --pool names
  queries-cold.txt         --cold distinct allowed names, none in the warm pool
  allowed-pool.txt         the warm pool, most popular first
  probes.env               shell-sourceable probe names (a listed name, an allowed name)
  workload.json            parameters and counts (also the cache stamp for compare.sh)

Names are synthetic but shaped like real ones: 2-, 3- and 4-label names over common
TLDs and a few two-label public suffixes (co.uk, com.br, ...), LDH labels of 4-14
characters built from pseudo-words, some with digits or a hyphen, and clusters of
several listed hosts under one registered domain, as real lists have.
"""

import argparse
import hashlib
from collections import Counter
import itertools
import json
import os
import random
import sys
import time

# Public suffixes with a rough share of registrations; the share only has to look
# plausible, it does not claim to be a census.
SUFFIXES = [
    ("com", 40), ("net", 8), ("org", 6), ("info", 3), ("xyz", 4), ("top", 3),
    ("de", 5), ("fr", 3), ("al", 1), ("ru", 4), ("nl", 2), ("it", 2), ("pl", 2),
    ("es", 2), ("io", 2), ("co", 2), ("me", 1), ("tv", 1), ("cc", 1), ("club", 1),
    ("online", 1), ("site", 1), ("co.uk", 3), ("com.br", 2), ("com.au", 1),
]

# Host prefixes seen in front of registered domains.
PREFIXES = [
    "www", "www", "www", "m", "cdn", "img", "static", "api", "mail", "en", "de",
    "fr", "video", "videos", "stream", "live", "media", "app", "login", "shop",
    "blog", "news", "ads", "track", "pics", "files", "dl", "s1", "s2", "web",
]

# Short real-looking words that domain labels are often glued from.
COMMON_WORDS = (
    "best shop free online hot tube cam bet casino game games news video live star "
    "web net app cloud market deal club world city home my the top go get play win "
    "sex girls porn chat date love meet fun tv movie film music radio sport sports "
    "bank cash loan crypto coin trade deal sale buy cheap fast easy smart pro plus "
    "hub zone land spot box lab base link site page info data host mail pay bit "
    "red blue black gold green pink dark big mega super ultra prime real true"
).split()

ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t",
          "v", "w", "z", "br", "ch", "cl", "cr", "dr", "fl", "gr", "pl", "pr", "sh",
          "sl", "sp", "st", "tr", "th", "qu", ""]
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ee", "oo", "ou", "y"]
CODAS = ["", "", "", "", "n", "r", "s", "t", "l", "m", "ck", "ng", "x", "nd", "st"]


def build_vocabulary(rng, size):
    """Pseudo-words of 2-9 letters from syllables, plus the common words."""
    words = set(COMMON_WORDS)
    while len(words) < size:
        n = rng.choice((1, 2, 2, 3))
        w = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                    for _ in range(n))
        if 2 <= len(w) <= 9:
            words.add(w)
    return sorted(words)


class NameMaker:
    """Makes labels and names from one seeded RNG stream."""

    def __init__(self, rng, vocab):
        self.rng = rng
        self.vocab = vocab
        self.nvocab = len(vocab)
        cum = list(itertools.accumulate(w for _, w in SUFFIXES))
        self.suffix_cum = cum
        self.suffix_names = [s for s, _ in SUFFIXES]
        self.total = cum[-1]

    def label(self):
        """One LDH label of 4-14 characters."""
        rnd = self.rng.random
        vocab, n = self.vocab, self.nvocab
        w = vocab[int(rnd() * n)]
        r = rnd()
        if len(w) < 4 or r < 0.55:
            sep = "-" if rnd() < 0.06 else ""
            w = w + sep + vocab[int(rnd() * n)]
        if len(w) > 14:
            w = w[:14].rstrip("-")
        if rnd() < 0.05:
            digits = str(int(rnd() * 1000)) if rnd() < 0.7 else str(1990 + int(rnd() * 40))
            w = w[:14 - len(digits)].rstrip("-") + digits
        while len(w) < 4:
            w += vocab[int(rnd() * n)][: 14 - len(w)]
        return w

    def suffix(self):
        x = self.rng.random() * self.total
        # a short linear scan beats bisect for 25 entries
        for i, c in enumerate(self.suffix_cum):
            if x < c:
                return self.suffix_names[i]
        return self.suffix_names[-1]

    def registered(self):
        return self.label() + "." + self.suffix()

    def prefix(self):
        if self.rng.random() < 0.75:
            return PREFIXES[int(self.rng.random() * len(PREFIXES))]
        return self.label()


def registered_of(name):
    """The registered domain of a generated name (last label + public suffix)."""
    labels = name.split(".")
    suf2 = ".".join(labels[-2:])
    if suf2 in _TWO_LABEL_SUFFIXES:
        return ".".join(labels[-3:])
    return suf2


_TWO_LABEL_SUFFIXES = {s for s, _ in SUFFIXES if "." in s}


def gen_blocklist(mk, n):
    """N unique listed names: ~55 % 2-label, ~33 % 3-label, ~12 % 4-label shapes;
    ~15 % of non-apex names reuse an earlier registered domain (clusters)."""
    rng = mk.rng
    names = set()
    regs = []          # registered domains seen, for clusters
    reg_set = set()
    add = names.add
    while len(names) < n:
        r = rng.random()
        if regs and r >= 0.55 and rng.random() < 0.15:
            reg = regs[int(rng.random() * len(regs))]
        else:
            reg = mk.registered()
        if r < 0.55:
            name = reg
        elif r < 0.88:
            name = mk.prefix() + "." + reg
        else:
            name = mk.prefix() + "." + mk.label() + "." + reg
        if len(name) > 253:
            continue
        if name not in names:
            add(name)
            if reg not in reg_set:
                reg_set.add(reg)
                regs.append(reg)
    return names, reg_set


def gen_allowed(mk, count, blocked, blocked_regs, taken):
    """COUNT allowed host names, grouped 1-5 per registered domain, none under a
    listed name or a registered domain that has listed names, none in TAKEN."""
    rng = mk.rng
    out = []
    seen = set(taken)
    hosts = ["www", "", "cdn", "api", "static", "img", "m", "mail", "login", "assets",
             "media", "news", "shop", "docs", "accounts", "video", "edge", "app"]
    while len(out) < count:
        reg = mk.registered()
        if reg in blocked_regs or reg in seen:
            continue
        k = 1 + int(rng.random() * 5)
        for h in rng.sample(hosts, k):
            name = (h + "." + reg) if h else reg
            if name in seen or name in blocked:
                continue
            seen.add(name)
            out.append(name)
            if len(out) == count:
                break
    return out


def zipf_cum_weights(n, s):
    return list(itertools.accumulate(1.0 / (k ** s) for k in range(1, n + 1)))


def write_lines(path, lines):
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(lines))
        f.write("\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--names", type=int, default=1_000_000, help="listed names (default 1000000)")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    ap.add_argument("--queries", type=int, default=200_000,
                    help="lines in queries-warm.txt (default 200000, at least 100000)")
    ap.add_argument("--pool", type=int, default=20_000, help="allowed names in the warm pool (default 20000)")
    ap.add_argument("--cold", type=int, default=20_000, help="distinct names in queries-cold.txt (default 20000)")
    ap.add_argument("--blocked-share", type=float, default=0.30,
                    help="share of warm queries that hit the list (default 0.30)")
    ap.add_argument("--zipf", type=float, default=0.9, help="Zipf exponent of the allowed pool (default 0.9)")
    ap.add_argument("--upstream-port", type=int, default=5399, help="NSD port on 127.0.0.1 (default 5399)")
    args = ap.parse_args(argv)
    if args.names < 1 or args.queries < 1 or args.pool < 1 or args.cold < 1:
        ap.error("counts must be positive")

    t0 = time.monotonic()
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "nsd"), exist_ok=True)

    # Separate streams so that changing --queries does not change the list, etc.
    vocab = build_vocabulary(random.Random(f"{args.seed}/vocab"), 60_000)
    mk_block = NameMaker(random.Random(f"{args.seed}/blocklist"), vocab)
    blocked, blocked_regs = gen_blocklist(mk_block, args.names)
    listed = sorted(blocked)
    t_list = time.monotonic()

    mk_allow = NameMaker(random.Random(f"{args.seed}/allowed"), vocab)
    pool = gen_allowed(mk_allow, args.pool, blocked, blocked_regs, ())
    cold = gen_allowed(mk_allow, args.cold, blocked, blocked_regs, pool)
    qrng = random.Random(f"{args.seed}/queries")
    qrng.shuffle(pool)   # popularity rank is independent of generation order
    qrng.shuffle(cold)

    # Warm queries.
    cw = zipf_cum_weights(len(pool), args.zipf)
    n_q = args.queries
    is_blocked = [qrng.random() < args.blocked_share for _ in range(n_q)]
    n_blocked = sum(is_blocked)
    allowed_picks = iter(qrng.choices(pool, cum_weights=cw, k=n_q - n_blocked))
    mk_q = NameMaker(qrng, vocab)
    hit = set()
    warm = []
    for b in is_blocked:
        if b:
            parent = listed[int(qrng.random() * len(listed))]
            hit.add(parent)
            if qrng.random() < 0.5:
                name = parent
            else:
                name = mk_q.prefix() + "." + parent
                if len(name) > 253:
                    name = parent
            warm.append(name + " A")
        else:
            warm.append(next(allowed_picks) + " A")

    # Probes: a listed 2-label name (NSD resolves it through the wildcard, so only
    # a loaded block list turns it into NXDOMAIN) and the most popular allowed name.
    probe_blocked = next((n for n in listed if n.count(".") == 1), listed[0])
    probe_allowed = pool[0]

    # Lists in each peer's format.
    write_lines(os.path.join(out, "blocklist.txt"), listed)
    write_lines(os.path.join(out, "blocklist-hit.txt"), sorted(hit | {probe_blocked}))
    write_lines(os.path.join(out, "dnsmasq.conf"), [f"address=/{n}/" for n in listed])
    write_lines(os.path.join(out, "unbound-blocklist.conf"),
                [f'local-zone: "{n}." always_nxdomain' for n in listed])
    with open(os.path.join(out, "rpz.zone"), "w", encoding="ascii") as f:
        f.write("$TTL 3600\n@ IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 3600\n"
                "@ IN NS localhost.\n")
        f.write("".join(f"{n} CNAME .\n*.{n} CNAME .\n" for n in listed))
    write_lines(os.path.join(out, "queries-warm.txt"), warm)
    write_lines(os.path.join(out, "queries-cold.txt"), [n + " A" for n in cold])
    write_lines(os.path.join(out, "allowed-pool.txt"), pool)

    # The stand-in internet.  Wildcards under every suffix and each of its parents
    # make every listed name resolve (blocked registered domains never share a
    # registered domain with an allowed name, so no empty non-terminal hides them).
    wild = set()
    for s, _ in SUFFIXES:
        labels = s.split(".")
        for i in range(len(labels)):
            wild.add(".".join(labels[i:]))
    with open(os.path.join(out, "nsd", "root.zone"), "w", encoding="ascii") as f:
        f.write("$ORIGIN .\n$TTL 86400\n"
                ". IN SOA ns.nsd.test. hostmaster.nsd.test. 1 3600 900 604800 86400\n"
                ". IN NS ns.nsd.test.\nns.nsd.test. IN A 127.0.0.1\n")
        for s in sorted(wild):
            f.write(f"*.{s}. IN A 198.18.255.1\n")
        for i, n in enumerate(itertools.chain(pool, cold)):
            f.write(f"{n}. IN A 198.18.{((i + 1) >> 8) & 0xff}.{(i + 1) & 0xff}\n")
    nsd_dir = os.path.join(out, "nsd")
    with open(os.path.join(out, "nsd.conf"), "w", encoding="ascii") as f:
        f.write(f"""# Generated by benches/gen_workload.py: the loopback upstream for compare.sh.
server:
    ip-address: 127.0.0.1@{args.upstream_port}
    do-ip4: yes
    do-ip6: no
    server-count: 1
    reuseport: no
    username: ""
    chroot: ""
    zonesdir: "{nsd_dir}"
    database: ""
    zonelistfile: "{nsd_dir}/zone.list"
    xfrdfile: "{nsd_dir}/xfrd.state"
    xfrdir: "{nsd_dir}"
    pidfile: "{nsd_dir}/nsd.pid"
    logfile: "{nsd_dir}/nsd.log"
    verbosity: 0
    hide-version: yes
    # Response rate limiting off: with it on (Debian's build enables it) NSD
    # silently drops a share of the answers a benchmark asks for.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    rrl-slip: 0
remote-control:
    control-enable: no
zone:
    name: "."
    zonefile: "root.zone"
""")
    with open(os.path.join(out, "probes.env"), "w", encoding="ascii") as f:
        f.write(f"PROBE_BLOCKED={probe_blocked}\nPROBE_ALLOWED={probe_allowed}\n")

    counts = {
        "listed": len(listed), "listed_hit": len(hit | {probe_blocked}),
        "listed_registered_domains": len(blocked_regs),
        "labels": {str(k): v for k, v in sorted(Counter(n.count(".") + 1 for n in listed).items())},
        "warm_queries": n_q, "warm_blocked": n_blocked,
        "warm_distinct": len(set(warm)), "pool": len(pool), "cold": len(cold),
    }
    with open(os.path.abspath(__file__), "rb") as f:
        source_sha = hashlib.sha256(f.read()).hexdigest()
    meta = {"generator": "benches/gen_workload.py v1", "generator_sha256": source_sha, "args": {
        "names": args.names, "seed": args.seed, "queries": args.queries, "pool": args.pool,
        "cold": args.cold, "blocked_share": args.blocked_share, "zipf": args.zipf,
        "upstream_port": args.upstream_port}, "counts": counts,
        "probe_blocked": probe_blocked, "probe_allowed": probe_allowed}
    with open(os.path.join(out, "workload.json"), "w", encoding="ascii") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    t_end = time.monotonic()
    print(f"gen_workload: {len(listed)} listed names ({t_list - t0:.1f}s), {n_q} warm queries "
          f"({n_blocked} blocked), {len(cold)} cold, pool {len(pool)}; {t_end - t0:.1f}s -> {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
