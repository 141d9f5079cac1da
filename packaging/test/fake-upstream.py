#!/usr/bin/env python3
"""A stand-in upstream resolver for the nspawn test: every A question gets 192.0.2.1.

    python3 fake-upstream.py 127.0.0.1 5300

UDP and TCP, standard library only (python3-minimal). Anything else than an A question gets
an empty NOERROR answer. It exists so that the test can tell a forwarded answer (192.0.2.1,
TTL 300) from a blocked one (kidsafe's own NXDOMAIN) with no network in the container.
"""

import selectors
import socket
import struct
import sys

ANSWER_IP = bytes([192, 0, 2, 1])


def answer(query: bytes) -> bytes:
    if len(query) < 12:
        return b""
    qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return b""
    end = 12
    while end < len(query) and query[end] != 0:
        end += 1 + query[end]
    end += 1
    if end + 4 > len(query):
        return b""
    question = query[12:end + 4]
    qtype = struct.unpack("!H", query[end:end + 2])[0]
    records = b""
    if qtype == 1:
        records = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + ANSWER_IP
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if records else 0, 0, 0)
    return header + question + records


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((host, port))
    tcp.listen(16)
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ)
    sel.register(tcp, selectors.EVENT_READ)
    print(f"fake upstream on {host}:{port}", flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is udp:
                data, peer = udp.recvfrom(4096)
                reply = answer(data)
                if reply:
                    udp.sendto(reply, peer)
            else:
                conn, _ = tcp.accept()
                conn.settimeout(2)
                try:
                    size = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))[0]
                    reply = answer(conn.recv(size, socket.MSG_WAITALL))
                    if reply:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except (OSError, struct.error):
                    pass
                finally:
                    conn.close()


if __name__ == "__main__":
    main()
