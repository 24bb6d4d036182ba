#!/usr/bin/env python3
"""p50/p99 of each management request against a running example server.

    python3 benches/mgmt_scale.py ADDR CREDENTIALS_JSON POPULATE_LOG [SAMPLES]

ADDR is host:port (loopback only), CREDENTIALS_JSON the admin key the server
wrote on first start, POPULATE_LOG the output of examples/mgmt_populate.rs
(event key id, deep cursors). One keep-alive connection, requests in turn
(each request kind SAMPLES times after 5 warm-up calls), latency measured
client-side around the whole request and response. Prints a Markdown table.
"""
import base64
import http.client
import json
import re
import sys
import time
import urllib.parse

addr, creds_path, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
samples = int(sys.argv[4]) if len(sys.argv) > 4 else 200
host, port = addr.rsplit(":", 1)
assert host in ("127.0.0.1", "localhost", "[::1]"), "loopback only"
creds = json.load(open(creds_path))
log = open(log_path).read()
event_key = re.search(r"^event key: (\S+)", log, re.M).group(1)
deep_key = re.search(r"^deep key cursor: (\S+)", log, re.M).group(1)
deep_event = re.search(r"^deep event cursor: (\S+)", log, re.M).group(1)
headers = {"x-api-key": creds["id"], "x-api-secret": creds["secret"]}
conn = http.client.HTTPConnection(host, int(port), timeout=30)


def get(path):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"{path}: {r.status} {body[:200]!r}")
    return json.loads(body)


def first_inactive_deep():
    # A deep page of ?status=inactive: the cursor of the page after 9/10
    # of the list is the same key-position cursor, valid for any filter.
    return deep_key


q = urllib.parse.quote


def usage_cursor(kind, volume, group):
    # GET /usage's cursor for the position (volume, group) in its order.
    raw = f"{kind}.{volume}.{group}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


first_app = get("/apps?limit=1")["items"][0]["id"]
week_ago = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 7 * 86400))
requests = [
    ("GET /apikeys (first page)", "/apikeys?limit=50"),
    ("GET /apikeys (page at 90 %)", f"/apikeys?limit=50&cursor={deep_key}"),
    ("GET /apikeys?status=inactive", "/apikeys?limit=50&status=inactive"),
    ("GET /apikeys?status=inactive (page at 90 %)", f"/apikeys?limit=50&status=inactive&cursor={first_inactive_deep()}"),
    ("GET /apikeys?status=active", "/apikeys?limit=50&status=active"),
    ("GET /apikeys?application=app-42", "/apikeys?limit=50&application=app-42"),
    ("GET /apikeys?q=orion (0.1 % match)", "/apikeys?limit=50&q=orion"),
    ("GET /apikeys?q=orion (page at 90 %)", f"/apikeys?limit=50&q=orion&cursor={deep_key}"),
    ("GET /apikeys?q=billing (14 % match)", "/apikeys?limit=50&q=billing"),
    ("GET /apikeys?q=9999 (digits, ~0.05 %)", "/apikeys?limit=50&q=9999"),
    ("GET /apikeys/{id}", f"/apikeys/{event_key}"),
    ("GET /apikeys/{id}/events (the key with the events)", f"/apikeys/{event_key}/events?limit=50"),
    ("GET /apikeys/{id}/events (page at 50 %)", f"/apikeys/{event_key}/events?limit=50&cursor={deep_event}"),
    ("GET /apikeys/{id}/usage", f"/apikeys/{event_key}/usage"),
    ("GET /events (account, first page)", "/events?limit=50"),
    ("GET /events?key_id= (the key with the events)", f"/events?limit=50&key_id={event_key}"),
    ("GET /events (page at 50 %)", f"/events?limit=50&key_id={event_key}&cursor={deep_event}"),
    ("GET /apps (first page of 10,000)", "/apps?limit=50"),
    ("GET /apps?q=application 42 (title search)", "/apps?limit=50&q=" + q("application 42")),
    ("GET /apps?status=active", "/apps?limit=50&status=active"),
    ("GET /apps/{id} (with its key counts)", f"/apps/{first_app}"),
    ("GET /accounts (1,000 children)", "/accounts?limit=50"),
    ("GET /accounts?q=customer 99", "/accounts?limit=50&q=" + q("customer 99")),
    ("GET /usage (top 50 keys, 24 h)", "/usage?limit=50"),
    ("GET /usage (keys, page at volume 10, ~90 %)", f"/usage?limit=50&cursor={usage_cursor('key', 10, 'kw_0')}"),
    ("GET /usage?origin=mcp&category=realtime", "/usage?limit=50&origin=mcp&category=realtime"),
    ("GET /usage?group_by=app (top 50 of 10,000)", "/usage?limit=50&group_by=app"),
    ("GET /usage?group_by=app&origin=api", "/usage?limit=50&group_by=app&origin=api"),
    ("GET /usage?group_by=account (1,000 customers)", "/usage?limit=50&group_by=account"),
    ("GET /usage?group_by=account (7 days, daily)", "/usage?limit=50&group_by=account&granularity=day&from=" + q(week_ago)),
]
# Requests that aggregate a range in the database: fewer samples.
slow = {"GET /usage?group_by=account (1,000 customers)", "GET /usage?group_by=account (7 days, daily)"}

print("| request | p50 ms | p99 ms | max ms | items | samples |")
print("|---|---:|---:|---:|---:|---:|")
for name, path in requests:
    n = max(10, samples // 10) if name in slow else samples
    for _ in range(2 if name in slow else 5):
        body = get(path)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        body = get(path)
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    items = len(body.get("items", [])) if isinstance(body, dict) else "-"
    print(f"| {name} | {p50:.2f} | {p99:.2f} | {lat[-1]:.2f} | {items} | {n} |", flush=True)
