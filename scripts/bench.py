#!/usr/bin/env python3
"""The benchmark behind scripts/bench.sh (run that: it builds what this needs).

One run, every variant side by side: plain Envoy, a no-op wasm filter, this filter in the
configurations the budget names, and Envoy's own OpenTelemetry tracer. Each Envoy runs one
worker pinned to the first CPU; wrk, the backend, the ingestion endpoint and the OTLP sink
share the others. Rounds interleave the variants (A B C … A B C …) and every variant's CPU
per request is compared with plain Envoy's *in the same round*, so slow drift of the
machine cancels out; the report gives the median of those paired differences and their
spread. Writes docs/performance.md and docs/performance.svg.
"""
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
IKEY = "00000000-0000-0000-0000-0000000be4c8"
BACKEND, INGEST, OTLP = "127.0.0.1:20900", "127.0.0.1:20901", "127.0.0.1:20902"

# Every variant serves the same request: POST 1 KB to /bytes/1024 (a 1 KB response), so
# body capture has bodies to capture.
REQUEST_PATH = "/bytes/1024"
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = string.rep("a", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
"""
FOUR_HEADERS = {"request": {"headers": ["user-agent", "content-type"]},
                "response": {"headers": ["content-type", "content-length"]}}
BODIES = {"request": {"headers": ["user-agent", "content-type"], "body_bytes": 1024},
          "response": {"headers": ["content-type", "content-length"], "body_bytes": 1024}}


def filter_config(percentage, frontend, delivery=None, diagnostic=None):
    config = {"diagnostic": {"sampling_percentage": percentage, "frontend": frontend, **(diagnostic or {})}}
    if delivery:
        config["delivery"] = delivery
    return config


# Standard metrics are on by default; these variants show what they cost.
NO_STANDARD = {"standard_metrics": False}
# Two custom metric rules (APIM's emit-metric), on every exchange.
TWO_RULES = {"metrics": True, "emit_metrics": [
    {"name": "Requests by client", "value": "request.duration_ms",
     "dimensions": [{"name": "API ID"}, {"name": "Client", "value": "{request.header.user-agent}"}]},
    {"name": "Response bytes", "value": "response.size", "when": {"status": ["2xx"]},
     "dimensions": [{"name": "Status", "value": "{response.status}"}]}]}


FILTER_WASM = "dist/envoy_appinsights.wasm"
FLOOR_WASM = "dist/host_call_floor.wasm"


def floor_config(plugin_config):
    """The host calls the filter makes in each callback of the benchmark's exchange under
    `plugin_config`, from its own read plan (target/release/host-calls; the filter's
    `appinsights.host_calls` stat counts the same calls), for tests/host-call-floor to
    replay with nothing else: what Envoy's side of them costs."""
    out = subprocess.run([os.path.join(RELEASE, "host-calls")], input=json.dumps(plugin_config),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# Which appinsights variant each floor stands under.
FLOOR_OF = {"floor100": "ai100", "floor0": "ai0"}
# key, label, FILTER for envoy-config, wasm module, plugin configuration
VARIANTS = [
    ("plain", "plain Envoy", "none", None, None),
    ("noop", "no-op wasm filter", "noop", "dist/noop_filter.wasm", None),
    ("floor100", "host calls alone: those of 100%", "floor", FLOOR_WASM, filter_config(100, FOUR_HEADERS)),
    ("floor0", "host calls alone: those of 0%", "floor", FLOOR_WASM, filter_config(0, FOUR_HEADERS)),
    ("ai100", "appinsights 100%, 4 headers", "appinsights", FILTER_WASM, filter_config(100, FOUR_HEADERS)),
    ("ai10", "appinsights 10%, 4 headers", "appinsights", FILTER_WASM, filter_config(10, FOUR_HEADERS)),
    ("ai0", "appinsights 0%, 4 headers", "appinsights", FILTER_WASM, filter_config(0, FOUR_HEADERS)),
    ("ai100nostd", "appinsights 100%, 4 headers, standard metrics off", "appinsights", FILTER_WASM,
     filter_config(100, FOUR_HEADERS, diagnostic=NO_STANDARD)),
    ("ai0nostd", "appinsights 0%, 4 headers, standard metrics off", "appinsights", FILTER_WASM,
     filter_config(0, FOUR_HEADERS, diagnostic=NO_STANDARD)),
    ("ai100rules", "appinsights 100%, 4 headers, 2 custom metric rules", "appinsights", FILTER_WASM,
     filter_config(100, FOUR_HEADERS, diagnostic=TWO_RULES)),
    ("ai0rules", "appinsights 0%, 4 headers, 2 custom metric rules", "appinsights", FILTER_WASM,
     filter_config(0, FOUR_HEADERS, diagnostic=TWO_RULES)),
    ("ai100bodies", "appinsights 100%, 4 headers + 1 KB bodies both ways", "appinsights", FILTER_WASM,
     filter_config(100, BODIES)),
    ("ai100plain", "appinsights 100%, 4 headers, gzip off", "appinsights", FILTER_WASM,
     filter_config(100, FOUR_HEADERS, {"gzip": False})),
    ("otel", "OpenTelemetry tracer 100%, default flush (5 spans)", "otel", None, None),
    ("otel1000", "OpenTelemetry tracer 100%, flush every 1,000 spans", "otel-tuned", None, None),
]


def cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def pin(cpu_list):
    return ["taskset", "-c", ",".join(map(str, cpu_list))] if shutil.which("taskset") and cpu_list else []


def wait_http(url, proc=None, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"bench: the process behind {url} exited (is the port taken?)")
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


def start_envoy(index, variant, cpu):
    key, label, filter_kind, wasm, plugin = variant
    port, admin = 20000 + index, 21000 + index
    env = dict(os.environ, BACKEND=BACKEND, FILTER=filter_kind, LISTEN_ADDRESS="127.0.0.1",
               LISTEN_PORT=str(port), ADMIN_PORT=str(admin), OTLP_ADDRESS=OTLP)
    if wasm:
        env["WASM"] = os.path.join(ROOT, wasm)
    if plugin is not None:
        path = os.path.join(WORK, f"plugin-{index}.json")
        config = dict(plugin)
        if filter_kind == "floor":
            # The floor replays the calls the filter makes under this configuration.
            config = floor_config(config)
        if filter_kind == "appinsights":
            config.setdefault("loggers", {"bench": {
                "connection_string": f"InstrumentationKey={IKEY};IngestionEndpoint=http://{INGEST}/"}})
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
    wait_http(f"http://127.0.0.1:{admin}/ready", proc)
    return {"key": key, "name": label, "appinsights": filter_kind == "appinsights", "proc": proc, "port": port,
            "admin": admin, "rounds": [], "served": 0, "config": config if plugin is not None else None}


def run_wrk(port, seconds, connections, load_cpus):
    script = os.path.join(WORK, "request.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    out = subprocess.run(pin(load_cpus) + ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s",
                                          "-s", script, f"http://127.0.0.1:{port}{REQUEST_PATH}"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out) or not m:
        raise SystemExit(f"bench: failed requests:\n{out}")
    return int(m.group(1))


def envoy_stats(admin):
    """Counters and gauges from Envoy's admin, custom stats without the `wasmcustom.` prefix."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats", timeout=5) as r:
            text = r.read().decode()
    except Exception:
        return {}
    stats = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            stats[name.replace("wasmcustom.", "")] = int(value)
    return stats


def ingest_stats():
    with urllib.request.urlopen(f"http://{INGEST}/_stats", timeout=5) as r:
        return json.load(r)


def measure_round(v, args, load_cpus):
    pid = v["proc"].pid
    c0, t0 = cpu_seconds(pid), time.time()
    n = run_wrk(v["port"], args.duration, args.connections, load_cpus)
    c1, t1 = cpu_seconds(pid), time.time()
    v["served"] += n
    return {"rps": n / (t1 - t0), "cpu_us": (c1 - c0) * 1e6 / n, "requests": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--only", help="comma-separated variant keys to run (plain and noop always run)")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    variants_wanted = VARIANTS
    if args.only:
        keep = set(args.only.split(",")) | {"plain", "noop"}
        variants_wanted = [v for v in VARIANTS if v[0] in keep]
    all_cpus = cpus()
    envoy_cpu, load_cpus = all_cpus[0], (all_cpus[1:] or all_cpus)
    procs = []
    try:
        for addr, cmd in [(BACKEND, ["backend", "--listen", BACKEND]),
                          (INGEST, ["ingest", "--listen", INGEST, "--keep", "1000"]),
                          (OTLP, ["backend", "--listen", OTLP])]:
            p = subprocess.Popen(pin(load_cpus) + [os.path.join(RELEASE, cmd[0])] + cmd[1:],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_http(f"http://{addr}/_stats" if addr == INGEST else f"http://{addr}/", p)
        variants = []
        for i, variant in enumerate(variants_wanted):
            v = start_envoy(i, variant, envoy_cpu)
            procs.append(v["proc"])
            variants.append(v)
        for v in variants:  # warm-up
            v["served"] += run_wrk(v["port"], 2, args.connections, load_cpus)
        time.sleep(1)
        for v in variants:
            v["stats_warm"] = envoy_stats(v["admin"])
        for r in range(args.rounds):
            for v in variants:
                v["rounds"].append(measure_round(v, args, load_cpus))
                if v["appinsights"]:
                    v["rounds"][-1]["vm_memory"] = envoy_stats(v["admin"]).get("appinsights.vm_memory_bytes")
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{v['key']} {v['rounds'][-1]['rps']:.0f} rps {v['rounds'][-1]['cpu_us']:.1f} µs"
                + (f" {v['rounds'][-1]['vm_memory'] / 2**20:.2f} MiB" if v['rounds'][-1].get('vm_memory') else "")
                for v in variants),
                file=sys.stderr)
        time.sleep(2)  # let the last batches and spans go out, and the stats tick
        for v in variants:
            v["rss_mib"] = rss_kib(v["proc"].pid) / 1024
            v["stats"] = envoy_stats(v["admin"])
        report(variants, ingest_stats(), args)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def summarize(variants):
    plain = variants[0]
    for v in variants:
        paired = [r["cpu_us"] - p["cpu_us"] for r, p in zip(v["rounds"], plain["rounds"])]
        v["added"] = statistics.median(paired)
        v["added_q"] = quartiles(paired)
        v["cpu_us"] = statistics.median(r["cpu_us"] for r in v["rounds"])
        v["rps"] = statistics.median(r["rps"] for r in v["rounds"])
        v["throughput"] = statistics.median(r["rps"] / p["rps"] for r, p in zip(v["rounds"], plain["rounds"]))
        st = v.get("stats", {})
        items = st.get("appinsights.bench.items_sent") or st.get("tracing.opentelemetry.spans_sent")
        cluster = "appinsights" if v["appinsights"] else "otlp"
        tx = st.get(f"cluster.{cluster}.upstream_cx_tx_bytes_total")
        v["items"] = items
        v["created"] = st.get("appinsights.bench.items_created", 0)
        v["dropped"] = sum(n for k, n in st.items() if k.startswith("appinsights.bench.items_dropped"))
        v["wire"] = tx / items if items and tx else None
        if v["appinsights"]:
            v["host_calls"] = st.get("appinsights.host_calls", 0) / v["served"]
        elif v["key"] in FLOOR_OF:
            v["host_calls"] = float(v["config"]["calls_per_request"])
        else:
            v["host_calls"] = None
        # Linear memory after warm-up, after the first third of the rounds, and at the end
        # (wasm memory only grows: flat means no growth once the buffers reached their
        # working size).
        third = v["rounds"][max(len(v["rounds"]) // 3 - 1, 0)].get("vm_memory")
        v["vm_memory"] = (v.get("stats_warm", {}).get("appinsights.vm_memory_bytes"), third, st.get("appinsights.vm_memory_bytes"))
    return {v["key"]: v for v in variants}


def budget_lines(by):
    """The budget of issue 6, checked against this run."""
    lines = []

    def check(label, ok, detail):
        lines.append(f"| {label} | {detail} | {'met' if ok else '**not met**'} |")

    noop = by.get("noop", {}).get("added")
    if noop and noop > 0:
        for key, limit, label in [("ai100", 2.5, "100%, 4 headers: added CPU ≤ 2.5 × no-op's"),
                                  ("ai0", 1.3, "0%: added CPU ≤ 1.3 × no-op's"),
                                  ("ai100bodies", 4.0, "1 KB bodies both ways at 100%: added CPU ≤ 4 × no-op's")]:
            if key in by:
                ratio = by[key]["added"] / noop
                check(label, ratio <= limit, f"{by[key]['added']:.1f} µs = {ratio:.2f} × {noop:.1f} µs")
    if "ai100" in by and "otel1000" in by and by["otel1000"]["added"] > 0:
        ratio = by["ai100"]["added"] / by["otel1000"]["added"]
        check("100%: added CPU ≤ 0.35 × tuned OpenTelemetry tracer's", ratio <= 0.35,
              f"{by['ai100']['added']:.1f} µs = {ratio:.2f} × {by['otel1000']['added']:.1f} µs")
    if "ai100" in by:
        t = by["ai100"]["throughput"]
        check("100%: throughput ≥ 0.85 × plain Envoy", t >= 0.85, f"{t:.2f} × plain")
    mem = [v["vm_memory"] for v in by.values() if v["appinsights"] and all(v["vm_memory"])]
    if mem and "ai0" in by and by["ai0"]["vm_memory"][2]:
        mib = 2**20
        flat = all(third == end for _, third, end in mem)
        top = max(end for _, _, end in mem)
        # The fixed overhead: what the VM holds with no telemetry buffered (0% sampling).
        fixed = by["ai0"]["vm_memory"][2]
        budget = 8 * mib  # delivery.max_buffer_bytes, the default the variants use
        check("VM linear memory flat under load, within the buffer budget (8 MiB) + fixed overhead",
              flat and top <= budget + fixed,
              f"no growth after the first third of the rounds: {'yes' if flat else 'no'}; largest {top / mib:.1f} MiB "
              f"≤ 8 MiB + {fixed / mib:.1f} MiB fixed (the 0% variant's)")
    return lines


def decomposition(by):
    """Splits each appinsights variant's added CPU with the floor filter that makes its host calls."""
    lines = []
    noop = by.get("noop", {}).get("added")
    for floor_key, key in FLOOR_OF.items():
        if floor_key not in by or key not in by or not noop:
            continue
        floor, v = by[floor_key], by[key]
        calls = v["host_calls"] or 0
        stale = "" if abs(calls - floor["host_calls"]) < 0.05 else \
            f" (**stale**: the filter made {calls:.2f} calls/request, the floor replays {floor['host_calls']:.0f})"
        lines.append(f"| {v['name']} | {noop:.1f} | {floor['added'] - noop:.1f} ({floor['host_calls']:.0f} calls{stale}) | "
                     f"{v['added'] - floor['added']:.1f} | {v['added']:.1f} | {floor['added'] / noop:.2f} × |")
    if not lines:
        return "(This run left out the floor variants or the filter variants they stand under.)"
    return "\n".join(["| variant | running any wasm filter (no-op) | Envoy answering the filter's host calls (floor − no-op) "
                      "| the filter's own code (filter − floor) | added CPU | floor alone, × no-op's |",
                      "|---|---:|---:|---:|---:|---:|"] + lines)


def svg_chart(variants):
    """Horizontal bars: added CPU per request over plain Envoy, with the quartile range."""
    rows = [v for v in variants if v["key"] != "plain"]
    top = max(max(v["added_q"][1], v["added"]) for v in rows) * 1.1 or 1
    width, left, bar_h, gap = 760, 330, 18, 10
    height = 40 + len(rows) * (bar_h + gap) + 30
    scale = (width - left - 40) / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-size="14">CPU added per request over plain Envoy (µs, median of paired rounds; whiskers: quartiles)</text>']
    for i, v in enumerate(rows):
        y = 35 + i * (bar_h + gap)
        colour = "#999" if v["key"] == "noop" else ("#c66" if v["key"].startswith("otel") else
                                                     ("#bbb" if v["key"].startswith("floor") else "#3a7bd5"))
        w = max(v["added"], 0) * scale
        lo, hi = (max(q, 0) * scale for q in v["added_q"])
        label = v["name"].replace("&", "&amp;")
        out += [f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{label}</text>',
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>',
                f'<line x1="{left + lo:.1f}" x2="{left + hi:.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" stroke="black"/>',
                f'<text x="{left + max(w, hi) + 6:.1f}" y="{y + 13}">{v["added"]:.1f}</text>']
    out.append("</svg>")
    return "\n".join(out) + "\n"


def report(variants, ingest, args):
    by = summarize(variants)
    noop_added = by["noop"]["added"] if "noop" in by else 0
    lines = [
        "| variant | requests/s | throughput vs plain | gateway CPU µs/request | added CPU µs vs plain (quartiles) | × no-op's added CPU | host calls/request | wire bytes/item | VM memory MiB | Envoy RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        plain_or_noop = v["key"] in ("plain", "noop")
        ratio = "—" if plain_or_noop or noop_added <= 0 else f"{v['added'] / noop_added:.2f}"
        added = "—" if v["key"] == "plain" else f"{v['added']:+.1f} ({v['added_q'][0]:.1f}–{v['added_q'][1]:.1f})"
        calls = "—" if v["host_calls"] is None else f"{v['host_calls']:.2f}"
        wire = "—" if not v["wire"] else f"{v['wire']:.0f}"
        mem = "—" if not all(v["vm_memory"]) else " → ".join(f"{m / 2**20:.1f}" for m in v["vm_memory"])
        lines.append(f"| {v['name']} | {v['rps']:.0f} | {v['throughput']:.2f} | {v['cpu_us']:.1f} | {added} | {ratio} | "
                     f"{calls} | {wire} | {mem} | {v['rss_mib']:.0f} |")
    table = "\n".join(lines)
    budget = "\n".join(["| budget | this run | |", "|---|---|---|"] + budget_lines(by))
    split = decomposition(by)
    filters = [v for v in variants if v["appinsights"]]
    total = sum(r["requests"] for v in filters for r in v["rounds"])
    created = sum(v["created"] for v in filters)
    sent = sum(v["items"] or 0 for v in filters)
    dropped = sum(v["dropped"] for v in filters)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    envoy_version = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]
    command = f"scripts/bench.sh --rounds {args.rounds} --duration {args.duration:g} --connections {args.connections}"
    if args.only:
        command += f" --only {args.only}"
    with open(os.path.join(ROOT, "docs", "performance.svg"), "w") as f:
        f.write(svg_chart(variants))
    doc = f"""# Performance

Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.

- Machine: {machine}.
- Envoy {envoy_version}: one worker, pinned with the rest of the process to CPU 0; wrk
  (1 thread, {args.connections} connections), the backend, the local ingestion endpoint and
  the OTLP sink on the other CPU(s).
- Every variant proxies the same request to the same backend: `POST /bytes/1024` with a
  1 KB body, answered with 1 KB, as fast as Envoy serves it. Rounds interleave the variants
  (A B C … A B C …), {args.duration:g} s each. CPU is Envoy's user+system time from
  `/proc/<pid>/stat` divided by the requests served in the round; "added CPU" is the
  median over rounds of the difference with plain Envoy *in the same round* (the machine's
  drift cancels out), with the quartiles of those differences.
- appinsights variants send a Request and a Dependency item per sampled request and
  capture two request and two response headers on the Request; "1 KB bodies" also
  captures the first 1 KB of both bodies; 10% and 0% sample operations out (errors would
  still be logged; there are none). Batches are gzip-compressed unless the variant says
  otherwise. The OpenTelemetry variants run Envoy's own tracer (`envoy.tracers.opentelemetry`,
  one span per request, OTLP over HTTP) at 100% sampling, flushing every 5 spans (its
  default) or every 1,000 (`tracing.opentelemetry.min_flush_spans`).
- "host calls/request": the filter's `appinsights.host_calls` stat over every request the
  Envoy served. "wire bytes/item": bytes Envoy wrote to the ingestion (or OTLP) cluster,
  headers included, per item (or span) sent. "VM memory": the filter's
  `appinsights.vm_memory_bytes` after warm-up → after the first third of the rounds → at
  the end (wasm memory never shrinks, so flat means it stopped growing).
- {total} requests went through the filter variants in the measured rounds. Over the whole
  run (warm-up included) the filters created {created} items, sent {sent} and dropped
  {dropped} (buffer full, expired, rejected or too large, by their own stats); the
  ingestion endpoint accepted {ingest['items_accepted']} and rejected
  {ingest['items_rejected']}.

{table}

![CPU added per request](performance.svg)

## Budget

{budget}

How to read it: "added CPU" is what a variant costs Envoy per request over plain Envoy;
"× no-op's added CPU" compares that with the cost of merely running an empty wasm filter.
Absolute numbers drift between machines and runs; ratios from one run are what holds.

## Where the added CPU goes

The "host calls alone" variants run `tests/host-call-floor`, a wasm filter that makes
exactly the host calls the filter makes per request (the same calls, in the same
callbacks, listed by running the filter's own read plan for the variant's configuration:
`target/release/host-calls`) and nothing else. Their cost over the no-op filter's is what Envoy spends
answering those calls; what the filter adds on top is its own code (ids, sampling, JSON,
gzip, batching).

{split}
"""
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    path = os.path.join(ROOT, "docs", "performance.md")
    # Keep the hand-written analysis that follows the generated part.
    tail = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        marker = "\n## Where the time goes"
        if marker in old:
            tail = old[old.index(marker):]
    with open(path, "w") as f:
        f.write(doc + tail)
    print(doc)


if __name__ == "__main__":
    main()
