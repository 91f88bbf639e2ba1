#!/usr/bin/env python3
"""Prints Application Insights items (NDJSON on stdin) as a readable table, grouped by
operation: the demo's view of what arrived."""
import json
import sys

KIND = {"RequestData": "Request", "RemoteDependencyData": "Dependency", "ExceptionData": "Exception",
        "MessageData": "Trace", "MetricData": "Metric", "EventData": "Event", "AvailabilityData": "Availability"}


def describe(item):
    base_type = item["data"]["baseType"]
    d = item["data"]["baseData"]
    kind = KIND.get(base_type, base_type)
    if base_type in ("RequestData", "RemoteDependencyData"):
        code = d.get("responseCode", d.get("resultCode", ""))
        ok = "ok" if d.get("success", True) else "FAILED"
        return kind, d.get("name", ""), f"{code} {ok}", d.get("duration", "")
    if base_type == "ExceptionData":
        e = d["exceptions"][0]
        return kind, e.get("typeName", ""), "", ""
    if base_type == "MessageData":
        return kind, d.get("message", ""), str(d.get("severityLevel", "")), ""
    return kind, json.dumps(d)[:60], "", ""


def main():
    items = [json.loads(line) for line in sys.stdin if line.strip()]
    items.sort(key=lambda i: i["time"])
    print(f"\n{len(items)} items arrived:\n")
    print(f"{'time (UTC)':<16} {'operation':<10} {'item':<10} {'name':<30} {'result':<12} {'duration':<17} operation name")
    for item in items:
        kind, name, result, duration = describe(item)
        shown = item["tags"].get("ai.operation.name", "") if kind == "Request" else ""
        print(f"{item['time'][11:26]:<16} {item['tags'].get('ai.operation.id', '')[:8]:<10} {kind:<10} "
              f"{name[:30]:<30} {result[:12]:<12} {duration:<17} {shown}")
    if items:
        first = items[0]
        print("\none item in full:")
        print(json.dumps(first, indent=2))


if __name__ == "__main__":
    main()
