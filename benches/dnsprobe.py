#!/usr/bin/env python3
"""Poll a DNS server on loopback until it gives the expected answer for one name.

Used by compare.sh to time start-up ("process spawned" -> "first block answer")
with ~10 ms resolution, which spawning `dig` in a loop cannot give.

  dnsprobe.py --port 5401 --name listed.example --expect nxdomain \
              --since "$(date +%s%N)" --timeout 300 --pid 1234

Prints the seconds elapsed since --since (or since the probe started) when the
expected answer arrives, exits 0; exits 1 on timeout, 2 if --pid died first.
Python 3.11 standard library only.
"""

import argparse
import os
import random
import socket
import struct
import sys
import time

RCODES = {0: "noerror", 2: "servfail", 3: "nxdomain", 5: "refused"}


def build_query(qid, name, qtype=1):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD=1, one question
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        q += bytes([len(raw)]) + raw
    return q + b"\x00" + struct.pack("!HH", qtype, 1)


def check(resp, qid, expect):
    """True when RESP is the answer to QID and matches EXPECT."""
    if len(resp) < 12:
        return False, "short"
    rid, flags, _qd, an, _ns, _ar = struct.unpack("!HHHHHH", resp[:12])
    if rid != qid or not flags & 0x8000:
        return False, "mismatch"
    rcode = RCODES.get(flags & 0xF, str(flags & 0xF))
    if expect == "any":
        return True, rcode
    if expect == "answer":
        return rcode == "noerror" and an > 0, rcode
    return rcode == expect, rcode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--expect", choices=["nxdomain", "noerror", "answer", "any"], default="nxdomain")
    ap.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between queries")
    ap.add_argument("--since", type=int, default=0, help="start time, ns since the epoch")
    ap.add_argument("--pid", type=int, default=0, help="stop early if this process dies")
    ap.add_argument("--tcp", action="store_true", help="ask over TCP instead of UDP")
    ap.add_argument("--start-file", default="",
                    help="touch START-FILE.ready, then wait for START-FILE to hold "
                         "'<spawn time ns> <pid>' (so the interpreter's own start-up is "
                         "not counted in a server's start-up time)")
    args = ap.parse_args()
    if not args.server.startswith("127."):
        ap.error("loopback only")

    if args.start_file:
        open(args.start_file + ".ready", "w").close()
        wait_until = time.monotonic() + 60
        while True:
            try:
                with open(args.start_file, encoding="ascii") as f:
                    fields = f.read().split()
                if len(fields) == 2:
                    args.since, args.pid = int(fields[0]), int(fields[1])
                    break
            except FileNotFoundError:
                pass
            if time.monotonic() > wait_until:
                print("no start file", file=sys.stderr)
                return 1
            time.sleep(0.001)

    since = args.since or time.time_ns()
    deadline = time.monotonic() + args.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if args.pid and not os.path.exists(f"/proc/{args.pid}"):
            print(f"process {args.pid} exited (last: {last})", file=sys.stderr)
            return 2
        qid = random.randrange(65536)
        query = build_query(qid, args.name)
        try:
            if args.tcp:
                with socket.create_connection((args.server, args.port), timeout=args.interval * 20) as s:
                    s.sendall(struct.pack("!H", len(query)) + query)
                    buf = b""
                    while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        buf += chunk
                    resp = buf[2:]
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    # connected, so "nothing listening" comes back at once as
                    # ECONNREFUSED instead of costing the whole receive timeout
                    s.connect((args.server, args.port))
                    s.settimeout(max(args.interval, 0.05))
                    s.send(query)
                    resp = s.recv(4096)
            ok, last = check(resp, qid, args.expect)
            if ok:
                print(f"{(time.time_ns() - since) / 1e9:.3f}")
                return 0
        except OSError as e:  # refused (not listening yet), timeout
            last = type(e).__name__
        time.sleep(args.interval)
    print(f"timeout after {args.timeout}s (last: {last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
