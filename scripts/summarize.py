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


def depth(item, by_id):
    """How deep `item` nests under its operation's root (parentId → id), at most 5."""
    n, parent = 0, item["tags"].get("ai.operation.parentId")
    while parent in by_id and n < 5:
        n, parent = n + 1, by_id[parent]["tags"].get("ai.operation.parentId")
    return n


def main():
    items = [json.loads(line) for line in sys.stdin if line.strip()]
    items.sort(key=lambda i: i["time"])
    roles = {i["tags"].get("ai.cloud.role", "") for i in items}
    print(f"\n{len(items)} items arrived:\n")
    if len(roles) > 1:
        # Several apps (the gateway and an instrumented backend): operations together,
        # each item indented under its parent, with the app that sent it.
        first = {}
        for i in items:
            first.setdefault(i["tags"].get("ai.operation.id", ""), i["time"])
        items.sort(key=lambda i: (first[i["tags"].get("ai.operation.id", "")], i["time"]))
        by_id = {i["data"]["baseData"]["id"]: i for i in items if "id" in i["data"]["baseData"]}
        print(f"{'time (UTC)':<16} {'operation':<10} {'role':<15} {'item':<16} {'name':<30} {'result':<12} duration")
        for item in items:
            kind, name, result, duration = describe(item)
            nested = "  " * depth(item, by_id) + kind
            print(f"{item['time'][11:26]:<16} {item['tags'].get('ai.operation.id', '')[:8]:<10} "
                  f"{item['tags'].get('ai.cloud.role', '')[:15]:<15} {nested:<16} {name[:30]:<30} {result[:12]:<12} {duration}")
        return
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
