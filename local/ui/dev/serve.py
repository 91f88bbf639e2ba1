#!/usr/bin/env python3
"""Development server for the viewer page, without the Rust server.

Serves local/ui/{index.html,app.js,app.css} at / and /ui/..., and a small in-memory
implementation of the JSON API in /work/notes/local-api.md (docs: the `local` crate's
README) over generated fixture items: a gateway Request -> Dependency -> backend Request
-> backend Dependency, Exceptions, Traces, standard and custom metrics, availability
results and rejected lines. `--live` adds a new operation every few seconds.

    python3 local/ui/dev/serve.py [--port 8099] [--live]
"""
import argparse, datetime as dt, http.server, json, os, random, threading, time, urllib.parse, uuid

UI = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITEMS, REJECTED, LOCK = [], [], threading.Lock()
CAPACITY = 100000
rnd = random.Random(7)


def iso(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f') + 'Z'


def parse(s):
    s = s.rstrip('Z')
    if '.' in s:
        a, b = s.split('.', 1)
        s = a + '.' + b[:6]
    return dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp()


def dur(ms):
    s = ms / 1000.0
    return '%02d:%02d:%02d.%06d' % (s // 3600, s % 3600 // 60, int(s % 60), round((s % 1) * 1e6))


def hexid(n):
    return uuid.uuid4().hex[:n]


def env(kind, base_type, t, base, op_id, op_name, parent, role, sample=100.0):
    tags = {'ai.operation.id': op_id, 'ai.operation.name': op_name, 'ai.cloud.role': role,
            'ai.cloud.roleInstance': role + '-0', 'ai.internal.sdkVersion': 'envoyappinsights:0.1.0'}
    if parent:
        tags['ai.operation.parentId'] = parent
    return {'name': 'Microsoft.ApplicationInsights.' + kind, 'time': iso(t), 'iKey': '00000000-0000-0000-0000-000000000000',
            'sampleRate': sample, 'tags': tags, 'data': {'baseType': base_type, 'baseData': dict(ver=2, **base)}}


def add(e, received=None):
    with LOCK:
        ITEMS.append({'seq': len(ITEMS) + 1, 'received': iso(received or time.time()), 'envelope': e})


def operation(t, path='/orders/{id}', status=200, backend_ms=40.0, sample=100.0, fail_kind=None):
    op = hexid(32)
    name = 'GET ' + path
    req_id, dep_id, breq_id, bdep_id = hexid(16), hexid(16), hexid(16), hexid(16)
    total = backend_ms + rnd.uniform(2, 9)
    ok = status < 400
    props = {'API Name': 'orders', 'API Revision': '1', 'Operation Name': 'get-order', 'HTTP Method': 'GET',
             'Request Id': str(uuid.uuid4()), 'Service Name': 'edge-gateway', 'Service Type': 'Envoy', 'Region': 'West Europe',
             'Cache': 'None', 'Environment': 'dev <test> & "quotes"'}
    items = [env('Request', 'RequestData', t, {'id': req_id, 'name': name, 'url': 'https://api.example.com' + path.replace('{id}', '7') + '?x=1',
                 'duration': dur(total), 'responseCode': str(status), 'success': ok, 'properties': props,
                 'measurements': {'Request Size': 0, 'Response Size': 512, 'Client Time (in ms)': round(total - backend_ms)}},
                 op, name, None, 'edge-gateway', sample)]
    items.append(env('RemoteDependency', 'RemoteDependencyData', t + 0.002, {'id': dep_id, 'name': name, 'type': 'HTTP',
                     'target': 'orders.default.svc.cluster.local:8080', 'data': 'http://orders.default.svc.cluster.local:8080/orders/7',
                     'duration': dur(backend_ms), 'resultCode': fail_kind or str(status), 'success': ok,
                     'properties': {'Envoy Cluster': 'orders', 'Backend Address': '10.0.0.5:8080'}}, op, name, req_id, 'edge-gateway', sample))
    if fail_kind != 'Timeout':
        items.append(env('Request', 'RequestData', t + 0.004, {'id': breq_id, 'name': 'GetOrder', 'url': 'http://orders:8080/orders/7',
                         'duration': dur(backend_ms - 4), 'responseCode': str(status), 'success': ok}, op, 'GetOrder', dep_id, 'orders-backend', sample))
        items.append(env('RemoteDependency', 'RemoteDependencyData', t + 0.008, {'id': bdep_id, 'name': 'SELECT orders', 'type': 'SQL',
                         'target': 'db.internal | ordersdb', 'data': 'SELECT * FROM orders WHERE id = @id', 'duration': dur(backend_ms / 2),
                         'resultCode': '0', 'success': True}, op, 'GetOrder', breq_id, 'orders-backend', sample))
        items.append(env('Message', 'MessageData', t + 0.01, {'message': 'loaded order 7 <b>not bold</b>', 'severityLevel': 'Information',
                         'properties': {'Category': 'Orders.Repository'}}, op, 'GetOrder', breq_id, 'orders-backend'))
    if not ok:
        kind = fail_kind or 'BackendError'
        items.append(env('Exception', 'ExceptionData', t + total / 1000.0, {'exceptions': [{'id': 1, 'typeName': kind,
                         'message': '%s: the backend did not answer within the route timeout (status %d, flags UT)' % (name, status),
                         'hasFullStack': False}], 'problemId': kind + ' at API orders', 'severityLevel': 'Error',
                         'properties': {'Response Code': str(status), 'Response Flags': 'UT', 'API Name': 'orders'}},
                         op, name, req_id, 'edge-gateway', sample))
        items.append(env('Message', 'MessageData', t + total / 1000.0, {'message': 'upstream failed: ' + kind, 'severityLevel': 'Error',
                         'properties': {'Source': 'trace rule'}}, op, name, req_id, 'edge-gateway'))
    for e in items:
        add(e, t + 1)
    return op


def metric(t, metric_id, name, value, count, mn, mx, props, custom=False):
    p = dict(props)
    if not custom:
        p.update({'_MS.MetricId': metric_id, '_MS.IsAutocollected': 'True', '_MS.AggregationIntervalMs': '60000'})
    e = env('Metric', 'MetricData', t, {'metrics': [{'name': name, 'kind': 'Aggregation', 'value': value, 'count': count,
            'min': mn, 'max': mx, 'stdDev': 1.0}], 'properties': p}, hexid(32), '', None, 'edge-gateway')
    del e['tags']['ai.operation.id'], e['tags']['ai.operation.name']
    add(e, t + 1)


def availability(t, test, location, ok, msg):
    op = hexid(32)
    add(env('Availability', 'AvailabilityData', t, {'id': op, 'name': test, 'duration': dur(rnd.uniform(20, 90)), 'success': ok,
            'runLocation': location, 'message': msg, 'properties': {'Envoy Cluster': 'orders', 'Method': 'GET',
            'Target': 'orders:8080/healthz', 'Expected Status': '200'}}, op, test, None, 'edge-gateway'), t + 1)


def seed():
    now = time.time()
    start = now - 3600
    for i in range(120):
        t = start + i * 30 + rnd.uniform(0, 20)
        r = rnd.random()
        if r < 0.08:
            operation(t, status=504, backend_ms=30000, fail_kind='Timeout')
        elif r < 0.15:
            operation(t, path='/orders', status=500, backend_ms=rnd.uniform(50, 200))
        else:
            operation(t, path=rnd.choice(['/orders/{id}', '/orders', '/customers/{id}']), backend_ms=rnd.lognormvariate(3.5, 0.6),
                      sample=rnd.choice([100.0, 50.0]))
    for m in range(60):
        t = (int(start) // 60 + m) * 60
        metric(t, 'requests/count', 'Server request count', 2, 2, 1, 1, {'request/resultCode': '200'}, custom=True)
        metric(t, '', 'Tokens', rnd.randint(100, 900), 3, 10, 400, {'Consumer': rnd.choice(['alice', 'bob']), 'API ID': 'orders'}, custom=True)
    for k in range(40):
        t = start + k * 90
        availability(t, 'orders-health', 'West Europe', rnd.random() > 0.1, 'passed: status 200')
        ok = rnd.random() > 0.3
        availability(t + 5, 'orders-health', 'gw-1', ok, 'passed: status 200' if ok else 'expected status 200, got 503')
    availability(now - 30, 'checkout <script>alert(1)</script>', 'North Europe', False, 'no answer within 30000 ms')
    REJECTED.append({'received': iso(now - 100), 'index': 0, 'reason': 'data.baseData.duration: "12 ms" is not a TimeSpan (d.hh:mm:ss.fffffff)',
                     'line': json.dumps(env('Request', 'RequestData', now, {'id': 'x', 'name': 'GET /', 'duration': '12 ms',
                                                                           'responseCode': '200', 'success': True}, 'op', 'GET /', None, 'web'))})
    REJECTED.append({'received': iso(now - 50), 'index': 3, 'reason': 'not JSON: expected value at line 1 column 1',
                     'line': '<html><body>oops</body></html>' + 'x' * 500})
    with LOCK:  # received in time order, as a real exporter would send them
        ITEMS.sort(key=lambda r: parse(r['envelope']['time']))
        for i, r in enumerate(ITEMS):
            r['seq'] = i + 1
            r['received'] = iso(parse(r['envelope']['time']) + 1)


def summary(rec):
    e = rec['envelope']
    tags, bt = e.get('tags', {}), e['data']['baseType']
    b = e['data']['baseData']
    name = b.get('name')
    if bt == 'ExceptionData':
        name = b['exceptions'][0]['typeName']
    elif bt == 'MessageData':
        name = b.get('message')
    elif bt == 'MetricData':
        name = b['metrics'][0]['name']
    d = b.get('duration')
    dms = None
    if d:
        h, m, s = d.split(':')
        dms = (int(h) * 3600 + int(m) * 60 + float(s)) * 1000
    res = b.get('responseCode', b.get('resultCode'))
    return {'seq': rec['seq'], 'time': e['time'], 'type': bt, 'name': name, 'operation_id': tags.get('ai.operation.id', ''),
            'operation_name': tags.get('ai.operation.name', ''), 'id': b.get('id', ''), 'parent_id': tags.get('ai.operation.parentId', ''),
            'duration_ms': dms, 'result': res, 'success': b.get('success'), 'role': tags.get('ai.cloud.role', ''),
            'sample_rate': e.get('sampleRate', 100.0), 'severity': b.get('severityLevel'),
            'message': b.get('message') or (b['exceptions'][0]['message'] if bt == 'ExceptionData' else None)}


def page(rows, q):
    limit = min(int(q.get('limit', 100)), 1000)
    if q.get('before_seq'):
        rows = [r for r in rows if r['seq'] < int(q['before_seq'])]
    return rows[:limit]


def in_window(s, q):
    t = parse(s['time'])
    return (not q.get('since') or t >= parse(q['since'])) and (not q.get('until') or t <= parse(q['until']))


def api(path, q):
    with LOCK:
        recs = list(reversed(ITEMS))
    sums = [summary(r) for r in recs]
    if path == '/api/summary':
        by = {}
        for s in sums:
            by[s['type']] = by.get(s['type'], 0) + 1
        return {'items': len(sums), 'rejected': len(REJECTED), 'capacity': CAPACITY, 'oldest_seq': 1 if sums else None,
                'newest_seq': sums[0]['seq'] if sums else None, 'by_type': by}
    if path == '/api/items':
        def ok(s, r):
            if q.get('type') and s['type'] != q['type']: return False
            if q.get('operation_name') and s['operation_name'] != q['operation_name']: return False
            if q.get('result') and s['result'] != q['result']: return False
            if q.get('success') and str(s['success']).lower() != q['success']: return False
            if q.get('q') and q['q'].lower() not in json.dumps(r['envelope']).lower(): return False
            return in_window(s, q)
        rows = [s for s, r in zip(sums, recs) if ok(s, r)]
        return {'total': len(rows), 'items': page(rows, q)}
    if path.startswith('/api/items/'):
        seq = int(path.rsplit('/', 1)[1])
        for r in recs:
            if r['seq'] == seq:
                return r
        return None
    if path.startswith('/api/operations/'):
        op = urllib.parse.unquote(path[len('/api/operations/'):])
        items = sorted([s for s in sums if s['operation_id'] == op], key=lambda s: s['seq'])
        ids = {s['id']: s for s in items if s['id']}
        kids = {}
        roots = []
        for s in items:
            (kids.setdefault(s['parent_id'], []) if s['parent_id'] in ids else roots).append(s)
        def node(s):
            return {'seq': s['seq'], 'children': [node(c) for c in kids.get(s['id'], []) if s['id']]}
        return {'operation_id': op, 'items': items, 'tree': [node(s) for s in roots]}
    if path == '/api/failures':
        w = [s for s in sums if in_window(s, q)]
        ex, fr, fd = {}, {}, {}
        for s in w:
            wt = 100.0 / (s['sample_rate'] or 100)
            if s['type'] == 'ExceptionData':
                g = ex.setdefault((s['name'], s['operation_name']), {'type': s['name'], 'operation_name': s['operation_name'], 'count': 0, 'items': 0, 'estimated': 0, 'last_seq': s['seq']})
                g['count'] += 1; g['items'] += 1; g['estimated'] += wt
            elif s['type'] == 'RequestData' and s['success'] is False:
                g = fr.setdefault((s['operation_name'], s['result']), {'operation_name': s['operation_name'], 'result': s['result'], 'count': 0, 'estimated': 0})
                g['count'] += 1; g['estimated'] += wt
            elif s['type'] == 'RemoteDependencyData' and s['success'] is False:
                r = next(x for x in recs if x['seq'] == s['seq'])
                tgt = r['envelope']['data']['baseData'].get('target', '')
                g = fd.setdefault((tgt, s['result']), {'target': tgt, 'result': s['result'], 'count': 0, 'estimated': 0})
                g['count'] += 1; g['estimated'] += wt
        srt = lambda d: sorted(d.values(), key=lambda g: -g['count'])
        return {'exceptions': srt(ex), 'failed_requests': srt(fr), 'failed_dependencies': srt(fd)}
    if path == '/api/metrics':
        bs = int(q.get('bucket_s', 60))
        w = [s for s in sums if in_window(s, q)]
        buckets = {}
        for s in w:
            if s['type'] not in ('RequestData', 'RemoteDependencyData', 'ExceptionData'):
                continue
            t = int(parse(s['time'])) // bs * bs
            b = buckets.setdefault(t, {'start': iso(t), 'requests': 0, 'failed': 0, 'd': [], 'dependencies': 0, 'exceptions': 0})
            wt = 100.0 / (s['sample_rate'] or 100)
            if s['type'] == 'RequestData':
                b['requests'] += wt; b['d'].append(s['duration_ms'])
                if s['success'] is False: b['failed'] += wt
            elif s['type'] == 'RemoteDependencyData':
                b['dependencies'] += wt
            else:
                b['exceptions'] += wt
        out = []
        for t in sorted(buckets):
            b = buckets[t]
            d = sorted(b.pop('d'))
            pct = lambda p: d[min(len(d) - 1, int(p * len(d)))] if d else None
            b.update(duration_p50=pct(.5), duration_p95=pct(.95), duration_p99=pct(.99))
            out.append(b)
        custom = {}
        for s, r in zip(sums, recs):
            if s['type'] != 'MetricData' or not in_window(s, q):
                continue
            bd = r['envelope']['data']['baseData']
            m = bd['metrics'][0]
            dims = {k: v for k, v in bd.get('properties', {}).items() if not k.startswith('_MS.')}
            c = custom.setdefault(m['name'], {'name': m['name'], 'namespace': m.get('ns', ''), 'series': {}})
            key = json.dumps(dims, sort_keys=True)
            se = c['series'].setdefault(key, {'dimensions': dims, 'count': 0, 'sum': 0.0, 'min': m['min'], 'max': m['max']})
            se['count'] += m['count']; se['sum'] += m['value']; se['min'] = min(se['min'], m['min']); se['max'] = max(se['max'], m['max'])
        for c in custom.values():
            c['series'] = list(c['series'].values())
        return {'buckets': out, 'source': q.get('source', 'items'), 'custom': list(custom.values())}
    if path == '/api/availability':
        tests = {}
        for s, r in zip(sums, recs):
            if s['type'] != 'AvailabilityData':
                continue
            loc = r['envelope']['data']['baseData'].get('runLocation', '')
            tt = tests.setdefault((s['name'], loc), {'name': s['name'], 'location': loc, 'runs': 0, 'passed': 0, 'last': s, 'results': []})
            tt['runs'] += 1; tt['passed'] += 1 if s['success'] else 0
            if len(tt['results']) < 50: tt['results'].append(s)
        return {'tests': list(tests.values())}
    if path == '/api/rejected':
        return {'items': list(reversed(REJECTED))[:int(q.get('limit', 100))]}
    return None


class H(http.server.BaseHTTPRequestHandler):
    def send(self, code, body, ctype):
        self.send_response(code)
        self.send_header('content-type', ctype)
        self.send_header('cache-control', 'no-store')
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        files = {'/': ('index.html', 'text/html; charset=utf-8'), '/ui/app.js': ('app.js', 'text/javascript; charset=utf-8'),
                 '/ui/app.css': ('app.css', 'text/css; charset=utf-8')}
        if u.path in files:
            name, ctype = files[u.path]
            with open(os.path.join(UI, name), 'rb') as f:
                return self.send(200, f.read(), ctype)
        if u.path.startswith('/api/'):
            q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
            try:
                body = api(u.path, q)
            except ValueError as e:
                return self.send(400, json.dumps({'error': str(e)}).encode(), 'application/json')
            if body is None:
                return self.send(404, b'{"error":"not found"}', 'application/json')
            return self.send(200, json.dumps(body).encode(), 'application/json')
        self.send(404, b'not found', 'text/plain')

    def log_message(self, *a):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=8099)
    ap.add_argument('--live', action='store_true')
    a = ap.parse_args()
    seed()
    if a.live:
        def gen():
            while True:
                time.sleep(3)
                operation(time.time(), status=rnd.choice([200, 200, 200, 500]))
        threading.Thread(target=gen, daemon=True).start()
    http.server.ThreadingHTTPServer(('127.0.0.1', a.port), H).serve_forever()


if __name__ == '__main__':
    main()
