#!/usr/bin/env python3
"""Turn one compare.sh run directory into the Markdown results table.

  report.py bench-out/run-YYYYmmdd-HHMMSS > results.md

Reads RUN/run.env, and per server RUN/<server>/metrics.env plus the raw dnsperf
outputs (cold.txt, warm-<k>.txt, fixed.txt).  Python 3.11 standard library only.
"""

import math
import os
import re
import statistics
import sys

ORDER = ["kidsafe", "kidsafe-base", "kidsafe-ceiling", "dnsmasq", "unbound", "pdns-recursor"]


def read_env(path):
    env = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v  # later lines win (status)
    except FileNotFoundError:
        pass
    return env


def parse_dnsperf(path):
    """The summary of one dnsperf run, or None when the file has none."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except FileNotFoundError:
        return None

    def num(pattern):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else None

    qps = num(r"Queries per second:\s+([0-9.]+)")
    if qps is None:
        return None
    codes = {}
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        for code, n in re.findall(r"([A-Z]+) ([0-9]+) \(", m.group(1)):
            codes[code] = int(n)
    return {
        "sent": num(r"Queries sent:\s+([0-9]+)") or 0,
        "completed": num(r"Queries completed:\s+([0-9]+)") or 0,
        "lost": num(r"Queries lost:\s+([0-9]+)") or 0,
        "qps": qps,
        "avg": num(r"Average Latency \(s\):\s+([0-9.]+)"),
        "std": num(r"Latency StdDev \(s\):\s+([0-9.]+)"),
        "codes": codes,
    }


def per_query_latencies(path):
    """Latencies (s) from dnsperf -v lines: '> NOERROR name A 0.000123'."""
    lat = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("> "):
                    try:
                        lat.append(float(line.rsplit(" ", 1)[1]))
                    except ValueError:
                        pass
    except FileNotFoundError:
        pass
    return lat


def pct(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100 * len(sorted_vals)))
    return sorted_vals[k - 1]


def fmt_int(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_ms(x):
    return "n/a" if x is None else f"{x * 1000:.3f}"


def fmt_mib(kib):
    return "n/a" if not kib else f"{kib / 1024:.1f}"


def fmt_ratio(a, b):
    return "n/a" if not a or not b else f"{a / b:.2f}×"


def load_server(run, name):
    d = os.path.join(run, name)
    env = read_env(os.path.join(d, "metrics.env"))
    warm = [r for r in (parse_dnsperf(os.path.join(d, f)) for f in sorted(os.listdir(d))
                        if re.fullmatch(r"warm-[0-9]+\.txt", f)) if r]
    cold = parse_dnsperf(os.path.join(d, "cold.txt"))
    fixed = parse_dnsperf(os.path.join(d, "fixed.txt"))
    lat = sorted(per_query_latencies(os.path.join(d, "fixed.txt")))
    s = {"name": name, "env": env, "warm": warm, "cold": cold, "fixed": fixed}
    # per warm run: CPU of the server and of unrelated processes (compare.sh cpu.txt)
    s["cpu_runs"] = []
    try:
        with open(os.path.join(d, "cpu.txt"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"(warm-[0-9]+) foreign_cpu_pct=([0-9]+) server_cpu_pct=([0-9]+)", line)
                if m:
                    s["cpu_runs"].append((m.group(1), int(m.group(2)), int(m.group(3))))
    except FileNotFoundError:
        pass
    s["status"] = env.get("status", "incomplete")
    s["warm_qps"] = statistics.median(r["qps"] for r in warm) if warm else None
    s["warm_min"] = min((r["qps"] for r in warm), default=None)
    s["warm_max"] = max((r["qps"] for r in warm), default=None)
    s["warm_avg_lat"] = statistics.median(r["avg"] for r in warm if r["avg"] is not None) if warm else None
    runs = warm + [r for r in (cold, fixed) if r]
    s["lost"] = sum(r["lost"] for r in runs)
    s["sent"] = sum(r["sent"] for r in runs)
    codes = {}
    for r in warm:
        for c, n in r["codes"].items():
            codes[c] = codes.get(c, 0) + n
    total = sum(codes.values())
    s["nx_share"] = codes.get("NXDOMAIN", 0) / total if total else None
    s["other_codes"] = {c: n for c, n in codes.items() if c not in ("NOERROR", "NXDOMAIN")}
    s["fixed_avg"] = statistics.fmean(lat) if lat else None
    s["fixed_p50"] = pct(lat, 50)
    s["fixed_p99"] = pct(lat, 99)
    s["fixed_n"] = len(lat)
    kib = lambda k: int(env[k]) if env.get(k, "").isdigit() else None  # noqa: E731
    s["rss_base"], s["rss_idle"] = kib("rss_base_kib"), kib("rss_idle_kib")
    s["rss_load"], s["hwm_load"] = kib("rss_load_kib"), kib("hwm_load_kib")
    listed = int(env["listed"]) if env.get("listed", "").isdigit() else None
    s["listed"] = listed
    if s["rss_idle"] and s["rss_base"] is not None and listed and listed > 1:
        s["bytes_per_name"] = (s["rss_idle"] - s["rss_base"]) * 1024 / (listed - 1)
    else:
        s["bytes_per_name"] = None
    return s


def main():
    run = sys.argv[1]
    meta = read_env(os.path.join(run, "run.env"))
    names = [n for n in meta.get("servers", "").split(",") if n]
    names.sort(key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    servers = [load_server(run, n) for n in names if os.path.isdir(os.path.join(run, n))]
    ref = next((s for s in servers if s["name"] == "kidsafe" and s["warm_qps"]), None)

    out = []
    w = out.append
    w(f"## Results: {int(meta.get('names', 0)):,} listed names\n")
    w(f"{meta.get('date', '?')}, {meta.get('cpu', '?')} ({meta.get('ncpu', '?')} CPUs), "
      f"Linux {meta.get('kernel', '?')}; server on CPU {meta.get('server_cpu')}, dnsperf "
      f"{meta.get('dnsperf')} and NSD {meta.get('nsd')} on CPU {meta.get('client_cpu')}; "
      f"loopback UDP. Warm: median of {meta.get('runs')} interleaved runs of {meta.get('duration')} s, "
      f"`dnsperf -c 10 -q 100` over {int(meta.get('queries_warm', 0)):,} queries (~30 % listed). "
      f"Cold: {int(meta.get('queries_cold', 0)):,} distinct cache-miss names once. "
      f"Latency at a fixed {meta.get('fixed_qps')} qps for {meta.get('duration')} s. "
      f"CPU busy before the start: {meta.get('busy_before', '?')} %."
      + (f" kidsafe binary: `{meta['kidsafe_bin']}`." if meta.get("kidsafe_bin") else "") + "\n")
    if not ref:
        w("Ratios are against kidsafe; kidsafe was not measured in this run, so they are n/a.\n")
    w("| server | version | start-up to first block (s) | cold QPS (cache miss) | warm QPS, median (min–max) "
      "| warm QPS ÷ kidsafe | avg latency at max rate (ms) | lost / sent (all runs) "
      f"| at {meta.get('fixed_qps')} qps: avg / p50 / p99 (ms) | RSS idle (MiB) | RSS after load (MiB) "
      "| peak RSS, VmHWM (MiB) | bytes per listed name | RSS after load ÷ kidsafe | NXDOMAIN share (warm) "
      "| CPU in warm runs: server / other processes (%, median) |")
    w("|" + "---|" * 16)
    notes = []
    for s in servers:
        env = s["env"]
        if s["status"] != "ok":
            notes.append(f"{s['name']}: {s['status']}")
        if env.get("checks"):
            notes.append(f"{s['name']}: sanity checks failed: {env['checks']}")
        if s["other_codes"]:
            notes.append(f"{s['name']}: other response codes in warm runs: {s['other_codes']}")
        warm = (f"{fmt_int(s['warm_qps'])} ({fmt_int(s['warm_min'])}–{fmt_int(s['warm_max'])})"
                if s["warm_qps"] else "n/a")
        fixed = (f"{fmt_ms(s['fixed_avg'])} / {fmt_ms(s['fixed_p50'])} / {fmt_ms(s['fixed_p99'])}"
                 if s["fixed_n"] else "n/a")
        name = s["name"] + ("" if s["status"] == "ok" else " (failed)")
        if s["name"] == "kidsafe-ceiling":
            name += f" ({fmt_int(s['listed'])} names)"
        w("| " + " | ".join([
            name,
            env.get("version", "?"),
            env.get("startup_s", "n/a"),
            fmt_int(s["cold"]["qps"]) if s["cold"] else "n/a",
            warm,
            fmt_ratio(s["warm_qps"], ref["warm_qps"]) if ref else "n/a",
            fmt_ms(s["warm_avg_lat"]),
            f"{fmt_int(s['lost'])} / {fmt_int(s['sent'])}",
            fixed,
            fmt_mib(s["rss_idle"]),
            fmt_mib(s["rss_load"]),
            fmt_mib(s["hwm_load"]),
            "n/a" if s["bytes_per_name"] is None else f"{s['bytes_per_name']:.0f}",
            fmt_ratio(s["rss_load"], ref["rss_load"]) if ref else "n/a",
            "n/a" if s["nx_share"] is None else f"{s['nx_share'] * 100:.1f} %",
            (f"{statistics.median(c[2] for c in s['cpu_runs']):.0f} / "
             f"{statistics.median(c[1] for c in s['cpu_runs']):.0f}") if s["cpu_runs"] else "n/a",
        ]) + " |")
        noisy = [f"{run} ({foreign} %)" for run, foreign, _ in s["cpu_runs"] if foreign > 10]
        if noisy:
            notes.append(f"{s['name']}: other processes used more than 10 % of a CPU during "
                         f"{', '.join(noisy)}: those runs are suspect")
    w("")
    w("Bytes per listed name = (RSS idle with the list − RSS idle with a one-name list) ÷ names. "
      "Latency percentiles come from dnsperf -v per-query lines of the fixed-rate run (answered queries only). "
      "NXDOMAIN share should be about 30 %: a lower share means the server is not blocking. "
      "kidsafe-ceiling is kidsafe with only the listed names the warm queries touch, so every warm query "
      "is a cache hit or a block (see benches/README.md).")
    if notes:
        w("")
        for n in notes:
            w(f"- {n}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
