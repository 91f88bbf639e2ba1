#!/usr/bin/env python3
"""The benchmark behind scripts/bench.sh (run that: it builds what this needs)."""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".work", "bench")
ENVOY = os.path.join(ROOT, ".venv", "bin", "envoy")
RELEASE = os.path.join(ROOT, "target", "release")
CLK_TCK = os.sysconf("SC_CLK_TCK")
IKEY = "00000000-0000-0000-0000-0000000bench"

# Every variant serves the same request: POST 1 KB to /bytes/1024 (a 1 KB response), so
# body capture has bodies to capture.
REQUEST_PATH = "/bytes/1024"
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = string.rep("a", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
"""
FOUR_HEADERS = {"frontend": {"request": {"headers": ["user-agent", "content-type"]},
                             "response": {"headers": ["content-type", "content-length"]}}}
BODIES = {"frontend": {"request": {"headers": ["user-agent", "content-type"], "body_bytes": 1024},
                       "response": {"headers": ["content-type", "content-length"], "body_bytes": 1024}}}


def sampled(percentage, diagnostic):
    return {"diagnostic": dict(diagnostic, sampling_percentage=percentage)}


# name, FILTER for envoy-config, wasm module, plugin configuration
FILTER_WASM = "dist/envoy_appinsights.wasm"
VARIANTS = [
    ("plain Envoy", "none", None, None),
    ("no-op wasm filter", "noop", "dist/noop_filter.wasm", None),
    ("appinsights 100%", "appinsights", FILTER_WASM, {}),
    ("100%, gzip off", "appinsights", FILTER_WASM, {"delivery": {"gzip": False}}),
    ("100% + 4 headers", "appinsights", FILTER_WASM, sampled(100, FOUR_HEADERS)),
    ("100% + 4 headers + 1 KB bodies", "appinsights", FILTER_WASM, sampled(100, BODIES)),
    ("10% + 4 headers", "appinsights", FILTER_WASM, sampled(10, FOUR_HEADERS)),
    ("0% + 4 headers", "appinsights", FILTER_WASM, sampled(0, FOUR_HEADERS)),
]


def cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def pin(cpu_list):
    return ["taskset", "-c", ",".join(map(str, cpu_list))] if shutil.which("taskset") and cpu_list else []


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not answer")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(m.group(1)) if m else 0


def start_envoy(index, name, filter_kind, wasm, plugin, backend, ingest, cpu):
    port, admin = 20000 + index, 21000 + index
    env = dict(os.environ, BACKEND=backend, FILTER=filter_kind, LISTEN_ADDRESS="127.0.0.1",
               LISTEN_PORT=str(port), ADMIN_PORT=str(admin))
    if wasm:
        env["WASM"] = os.path.join(ROOT, wasm)
    if plugin is not None:
        path = os.path.join(WORK, f"plugin-{index}.json")
        config = dict(plugin)
        config.setdefault("loggers", {"bench": {
            "connection_string": f"InstrumentationKey={IKEY};IngestionEndpoint=http://{ingest}/"}})
        with open(path, "w") as f:
            json.dump(config, f)
        env["PLUGIN_CONFIG"] = path
    yaml = subprocess.run([os.path.join(RELEASE, "envoy-config")], env=env, check=True,
                          capture_output=True, text=True).stdout
    cfg = os.path.join(WORK, f"envoy-{index}.yaml")
    with open(cfg, "w") as f:
        f.write(yaml)
    log = open(os.path.join(WORK, f"envoy-{index}.log"), "w")
    proc = subprocess.Popen(pin([cpu]) + [ENVOY, "-c", cfg, "--concurrency", "1", "--use-dynamic-base-id",
                                          "-l", "warning"], stdout=log, stderr=log)
    wait_http(f"http://127.0.0.1:{admin}/ready")
    return {"name": name, "proc": proc, "port": port, "admin": admin, "rounds": []}


def run_wrk(port, seconds, connections, load_cpus):
    script = os.path.join(WORK, "request.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    out = subprocess.run(pin(load_cpus) + ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s",
                                          "-s", script, f"http://127.0.0.1:{port}{REQUEST_PATH}"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"bench: non-2xx responses:\n{out}")
    return int(m.group(1))


def wire_bytes_per_item(admin):
    """Telemetry bytes on the wire per item, from the filter's Envoy stats."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=appinsights", timeout=5) as r:
            text = r.read().decode()
    except Exception:
        return None
    stats = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            stats[name.replace("wasmcustom.", "")] = int(value)
    items, sent = stats.get("appinsights.bench.items_sent", 0), stats.get("appinsights.bench.bytes_sent", 0)
    return sent / items if items else None


def ingest_stats(ingest):
    with urllib.request.urlopen(f"http://{ingest}/_stats", timeout=5) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    all_cpus = cpus()
    envoy_cpu, load_cpus = all_cpus[0], (all_cpus[1:] or all_cpus)
    procs = []
    try:
        backend_p = subprocess.Popen(pin(load_cpus) + [os.path.join(RELEASE, "backend"), "--listen", "127.0.0.1:20900"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(backend_p)
        ingest_p = subprocess.Popen(pin(load_cpus) + [os.path.join(RELEASE, "ingest"), "--listen", "127.0.0.1:20901", "--keep", "1000"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ingest_p)
        wait_http("http://127.0.0.1:20900/")
        wait_http("http://127.0.0.1:20901/_stats")
        variants = []
        for i, (name, kind, wasm, plugin) in enumerate(VARIANTS):
            v = start_envoy(i, name, kind, wasm, plugin, "127.0.0.1:20900", "127.0.0.1:20901", envoy_cpu)
            procs.append(v["proc"])
            variants.append(v)
        for v in variants:  # warm-up
            run_wrk(v["port"], 2, args.connections, load_cpus)
        for r in range(args.rounds):
            for v in variants:
                pid = v["proc"].pid
                c0, t0 = cpu_seconds(pid), time.time()
                n = run_wrk(v["port"], args.duration, args.connections, load_cpus)
                c1, t1 = cpu_seconds(pid), time.time()
                v["rounds"].append({"rps": n / (t1 - t0), "cpu_us": (c1 - c0) * 1e6 / n, "requests": n})
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{v['name']} {v['rounds'][-1]['rps']:.0f} rps {v['rounds'][-1]['cpu_us']:.1f} µs" for v in variants),
                file=sys.stderr)
        time.sleep(2)
        stats = ingest_stats("127.0.0.1:20901")
        for v in variants:
            v["rss_mib"] = rss_kib(v["proc"].pid) / 1024
            v["wire"] = wire_bytes_per_item(v["admin"])
        report(variants, stats, args)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def report(variants, stats, args):
    for v in variants:
        v["rps"] = statistics.median(r["rps"] for r in v["rounds"])
        v["cpu_us"] = statistics.median(r["cpu_us"] for r in v["rounds"])
    plain, noop = variants[0], variants[1]
    noop_added = noop["cpu_us"] - plain["cpu_us"]
    lines = [
        "| variant | requests/s | gateway CPU µs/request | added CPU µs vs plain | × no-op's added CPU | throughput vs plain | telemetry bytes/item on the wire | Envoy RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        added = v["cpu_us"] - plain["cpu_us"]
        ratio = "—" if v is plain or v is noop or noop_added <= 0 else f"{added / noop_added:.2f}"
        wire = "—" if not v.get("wire") else f"{v['wire']:.0f}"
        lines.append(f"| {v['name']} | {v['rps']:.0f} | {v['cpu_us']:.1f} | {added:+.1f} | {ratio} | "
                     f"{v['rps'] / plain['rps']:.2f} | {wire} | {v['rss_mib']:.0f} |")
    table = "\n".join(lines)
    total = sum(r["requests"] for v in variants[2:] for r in v["rounds"])
    machine = f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    envoy_version = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]
    doc = f"""# Performance

Generated by `scripts/bench.sh --rounds {args.rounds} --duration {args.duration:g} --connections {args.connections}` on
{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.

- Machine: {machine}
- Envoy: {envoy_version}, one worker pinned to CPU 0; wrk (1 thread, {args.connections} connections), the
  backend and the local ingestion endpoint on the other CPU(s).
- Each variant proxies the same request to the same backend: `POST /bytes/1024` with a
  1 KB body, answered with 1 KB. Rounds interleave the variants
  (A B C A B C …); the table shows medians. CPU time is Envoy's user+system time from
  `/proc/<pid>/stat` divided by the requests served in the round.
- "appinsights 100%" sends a Request and a Dependency item for every request; "+ 4
  headers" also captures two request and two response headers on the Request item; "+ 1 KB
  bodies" also captures the first 1 KB of both bodies; "10%" and "0%" sample operations out
  (errors would still be logged; there are none). Batches are gzip-compressed unless the
  variant says "gzip off"; "bytes/item on the wire" is the filter's bytes_sent / items_sent. {total} requests were
  served by the filter variants in the measured rounds; the ingestion endpoint accepted
  {stats['items_accepted']} items in total (warm-up included) and rejected {stats['items_rejected']}.

{table}

How to read it: "added CPU" is what the filter costs Envoy per request over plain Envoy;
"× no-op's added CPU" compares that with the cost of merely running an empty wasm filter.
Absolute numbers drift between machines and runs; ratios from one run are what holds.
"""
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "performance.md"), "w") as f:
        f.write(doc)
    print(doc)


if __name__ == "__main__":
    main()
