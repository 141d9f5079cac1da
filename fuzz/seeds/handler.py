#!/usr/bin/env python3
"""Writes the seed DNS queries of the `handler` fuzz target into seeds/handler/.

One file per case of the request path (see src/dns/handler.rs and HOSTILE-INPUTS.md);
re-run it after changing a case: python3 fuzz/seeds/handler.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handler")

RD = 0x0100


def header(qid, flags, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def name(text):
    out = b""
    for label in text.split(".") if text else []:
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def question(text, qtype=1, qclass=1):
    return name(text) + struct.pack("!HH", qtype, qclass)


def opt(payload=1232, version=0, do=False, options=b""):
    flags = 0x8000 if do else 0
    return b"\x00" + struct.pack("!HHBBHH", 41, payload, 0, version, flags, len(options)) + options


CASES = {
    "allowed-a": header(0x1001, RD) + question("www.example.org"),
    "blocked-a": header(0x1002, RD) + question("blocked.example"),
    "blocked-sub-aaaa-mixed-case": header(0x1003, RD) + question("WwW.BlOcKeD.ExAmPlE", 28),
    "allowlisted-sub": header(0x1004, RD) + question("a.ok.blocked.example"),
    "denied-https": header(0x1005, RD) + question("denied.example", 65),
    "casino-edns-do": header(0x1006, RD, ar=1) + question("casino.test") + opt(4096, do=True),
    "edns-version-1": header(0x1007, RD, ar=1) + question("www.example.org") + opt(version=1),
    "edns-payload-0-cookie": header(0x1008, RD, ar=1) + question("adult.test")
    + opt(0, options=struct.pack("!HH", 10, 8) + b"\x01" * 8),
    "qdcount-0": header(0x1009, RD, qd=0),
    "qdcount-2": header(0x100A, RD, qd=2) + question("www.example.org") + question("blocked.example"),
    "opcode-update": header(0x100B, (5 << 11) | RD) + question("example.org", 6),
    "opcode-notify": header(0x100C, 4 << 11) + question("example.org", 6),
    "chaos-version-bind": header(0x100D, RD) + question("version.bind", 16, 3),
    "any": header(0x100E, RD) + question("www.example.org", 255),
    "axfr": header(0x100F, 0) + question("example.org", 252),
    "no-rd": header(0x1010, 0) + question("www.example.org"),
    "qtype-666": header(0x1011, RD) + question("www.example.org", 666),
    "root-ns": header(0x1012, RD) + question("", 2),
    "nul-and-dot-in-label": header(0x1013, RD) + b"\x08ad\x00s.exa\x07blocked\x07example\x00" + struct.pack("!HH", 1, 1),
    "compressed-question": header(0x1014, RD, qd=2) + question("blocked.example") + b"\x03www\xc0\x0c" + struct.pack("!HH", 1, 1),
    "trailing-garbage": header(0x1015, RD) + question("adult.test") + b"\xde\xad\xbe\xef",
    "tc-ad-cd-z": header(0x1016, RD | 0x0200 | 0x0040 | 0x0020 | 0x0010) + question("www.example.org"),
    "long-name": header(0x1017, RD, ar=1) + question(".".join(["a" * 63] * 3 + ["b" * 61])) + opt(512),
}

os.makedirs(OUT, exist_ok=True)
for case, packet in CASES.items():
    with open(os.path.join(OUT, case + ".bin"), "wb") as f:
        f.write(packet)
print(f"wrote {len(CASES)} seeds to {OUT}")
