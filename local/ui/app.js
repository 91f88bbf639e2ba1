// appinsights-local: the telemetry viewer. Vanilla JS, no build step, no libraries.
// Talks to the JSON API of the `appinsights-local` server (api/summary, api/items, ...).
// Every value that comes from an item is put into the page with textContent (through
// `el`), never as HTML.
'use strict';
(() => {
  const TYPES = [
    ['RequestData', 'Request'], ['RemoteDependencyData', 'Dependency'], ['ExceptionData', 'Exception'],
    ['MessageData', 'Trace'], ['MetricData', 'Metric'], ['AvailabilityData', 'Availability'],
    ['EventData', 'Event'], ['PageViewData', 'Page view'],
  ];
  const TYPE_LABEL = Object.fromEntries(TYPES);
  const RANGES = [
    ['all', 'All stored', 0], ['15m', 'Last 15 minutes', 15 * 60e3], ['1h', 'Last hour', 3600e3],
    ['6h', 'Last 6 hours', 6 * 3600e3], ['24h', 'Last 24 hours', 864e5], ['7d', 'Last 7 days', 7 * 864e5],
    ['custom', 'Custom…', 0],
  ];
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const SVGNS = 'http://www.w3.org/2000/svg';

  // ---------- DOM helpers ----------
  const $ = (sel, root = document) => root.querySelector(sel);
  function setAttrs(n, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') n.setAttribute('class', v);
      else if (k === 'text') n.textContent = String(v);
      else if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(n, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k == null || k === false) continue;
      n.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return n;
  }
  // Replaces a node's children (arrays flattened, strings as text).
  function fill(n, ...kids) {
    n.replaceChildren();
    return append(n, kids);
  }
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    setAttrs(n, attrs);
    return append(n, kids);
  }
  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(SVGNS, tag);
    setAttrs(n, attrs);
    return append(n, kids);
  }
  // For the rare place a string must go into markup (none today): escape it first.
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  }

  // ---------- formatting ----------
  function parseTime(s) {
    if (!s) return NaN;
    // Envelopes may carry 7 fractional digits; Date wants at most 3.
    return Date.parse(String(s).replace(/(\.\d{3})\d+/, '$1'));
  }
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  function fmtTime(s, withDate) {
    const t = parseTime(s);
    if (isNaN(t)) return s == null ? '' : String(s);
    const d = new Date(t);
    const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    const today = new Date().toDateString() === d.toDateString();
    return (withDate || !today) ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}` : hms;
  }
  function fmtDur(ms) {
    if (ms == null || isNaN(ms)) return '';
    if (ms === 0) return '0 ms';
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
    if (ms < 60e3) return `${(ms / 1000).toFixed(ms < 10e3 ? 2 : 1)} s`;
    return `${(ms / 60e3).toFixed(1)} min`;
  }
  function fmtNum(n) {
    if (n == null || isNaN(n)) return '';
    return Number.isInteger(n) ? String(n) : n.toFixed(Math.abs(n) < 10 ? 2 : 1);
  }
  const typeLabel = (t) => TYPE_LABEL[t] || t || '?';
  const typeClass = (t) => `t-${String(t || 'x').replace(/Data$/, '').toLowerCase()}`;
  function typeBadge(t) {
    return el('span', { class: `badge ${typeClass(t)}` }, typeLabel(t));
  }
  function outcome(s) {
    if (s.success === true) return el('span', { class: 'ok' }, s.result || 'ok');
    if (s.success === false) return el('span', { class: 'fail' }, s.result || 'failed');
    if (s.severity) return el('span', { class: `sev sev-${String(s.severity).toLowerCase()}` }, s.severity);
    return s.result || '';
  }
  function sinceFor(range) {
    const r = RANGES.find((x) => x[0] === range);
    return r && r[2] ? new Date(Date.now() - r[2]).toISOString() : '';
  }
  function fromLocalInput(v) {
    if (!v) return '';
    const t = new Date(v).getTime();
    return isNaN(t) ? '' : new Date(t).toISOString();
  }
  function opHref(opId, seq) {
    return `#/operation/${encodeURIComponent(opId)}${seq != null ? `?seq=${seq}` : ''}`;
  }
  function itemHref(s) {
    return s.operation_id ? opHref(s.operation_id, s.seq) : `#/item/${s.seq}`;
  }
  function searchHref(params) {
    const q = qs(params);
    return `#/search${q ? `?${q}` : ''}`;
  }

  // ---------- API ----------
  function qs(params) {
    return Object.entries(params || {})
      .filter(([, v]) => v !== '' && v != null)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  }
  async function api(path, params) {
    const q = qs(params);
    const r = await fetch(`api/${path}${q ? `?${q}` : ''}`, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!r.ok) {
      const err = new Error(`${r.status} ${r.statusText || ''} from api/${path}`.trim());
      err.status = r.status;
      throw err;
    }
    return r.json();
  }
  // Calls `render(data)` only when the answer differs from the last one, so a refresh that
  // brings nothing new leaves the page (scroll, focus, open <details>) as it is.
  function changeTracker() {
    let last = null;
    return (data, force) => {
      const sig = JSON.stringify(data);
      if (!force && sig === last) return false;
      last = sig;
      return true;
    };
  }

  // ---------- shared building blocks ----------
  function rangeSelect(id, value, onchange) {
    return el('select', { id, name: 'range', onchange },
      RANGES.map(([v, label]) => el('option', { value: v, selected: v === value }, label)));
  }
  function field(label, control, cls) {
    return el('div', { class: `field ${cls || ''}` }, el('label', { for: control.id }, label), control);
  }
  function table(cols, rows, opts = {}) {
    // cols: [[label, class?]]; rows: [{attrs, cells: [...] }]. Each cell has data-label so
    // that on a narrow screen the table becomes stacked cards (CSS).
    return el('div', { class: 'table-wrap' },
      el('table', { class: `cards ${opts.cls || ''}` },
        opts.caption ? el('caption', null, opts.caption) : null,
        el('thead', null, el('tr', null, cols.map(([c, cls]) => el('th', { scope: 'col', class: cls }, c)))),
        el('tbody', null, rows.map((r) => el('tr', r.attrs,
          r.cells.map((c, i) => el('td', { 'data-label': cols[i][0], class: cols[i][1] }, c)))))));
  }
  function empty(text) {
    return el('p', { class: 'empty' }, text);
  }
  function errorBox(e) {
    return el('p', { class: 'error', role: 'alert' }, `Could not load: ${e.message}`);
  }
  function section(title, ...kids) {
    return el('section', { class: 'panel' }, el('h2', null, title), kids);
  }

  // ---------- search ----------
  function SearchView(root, route) {
    const p = route.params;
    let f = {
      range: p.range || 'all', since: p.since || '', until: p.until || '', type: p.type || '',
      operation_name: p.operation_name || '', result: p.result || '', success: p.success || '', q: p.q || '',
    };
    let before = p.before_seq || '';
    const newer = []; // before_seq values of the pages we came from
    const seen = changeTracker();

    const sinceIn = el('input', { id: 'f-since', type: 'datetime-local', step: 1, value: f.since });
    const untilIn = el('input', { id: 'f-until', type: 'datetime-local', step: 1, value: f.until });
    const custom = el('div', { class: 'custom-range', hidden: f.range !== 'custom' },
      field('From', sinceIn), field('To', untilIn));
    const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter items' },
      field('Time range', rangeSelect('f-range', f.range)),
      custom,
      field('Item type', el('select', { id: 'f-type', name: 'type' },
        el('option', { value: '' }, 'All types'),
        TYPES.map(([v, l]) => el('option', { value: v, selected: v === f.type }, l)))),
      field('Operation name', el('input', { id: 'f-op', name: 'operation_name', value: f.operation_name, placeholder: 'GET /orders/{id}', autocomplete: 'off' })),
      field('Result code', el('input', { id: 'f-result', name: 'result', value: f.result, placeholder: '500', inputmode: 'text', autocomplete: 'off', size: 6 }), 'narrow'),
      field('Success', el('select', { id: 'f-success', name: 'success' },
        [['', 'Any'], ['true', 'Succeeded'], ['false', 'Failed']].map(([v, l]) => el('option', { value: v, selected: v === f.success }, l))), 'narrow'),
      field('Text', el('input', { id: 'f-q', name: 'q', type: 'search', value: f.q, placeholder: 'anything in the item', autocomplete: 'off' }), 'grow'),
      el('div', { class: 'field actions' },
        el('button', { type: 'submit' }, 'Search'),
        el('button', { type: 'button', class: 'secondary', onclick: reset }, 'Clear')));
    const status = el('p', { class: 'muted' });
    const results = el('div');
    const newerBtn = el('button', { type: 'button', class: 'secondary', onclick: goNewer }, '← Newer');
    const newestBtn = el('button', { type: 'button', class: 'secondary', onclick: goNewest }, 'Newest');
    const olderBtn = el('button', { type: 'button', class: 'secondary', onclick: goOlder }, 'Older →');
    const pager = el('nav', { class: 'pager', 'aria-label': 'Result pages' }, newestBtn, newerBtn, olderBtn);
    root.append(el('h1', { class: 'view-title' }, 'Transaction search'), form, status, results, pager);

    let timer = 0;
    form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
    form.addEventListener('change', (e) => { if (e.target.tagName === 'SELECT' || e.target.type === 'datetime-local') apply(); });
    form.addEventListener('input', (e) => {
      if (e.target.tagName !== 'INPUT' || e.target.type === 'datetime-local') return;
      clearTimeout(timer);
      timer = setTimeout(apply, 400);
    });
    let oldest = null;

    function read() {
      const v = (id) => $(`#${id}`, form).value.trim();
      return { range: v('f-range'), since: v('f-since'), until: v('f-until'), type: v('f-type'),
        operation_name: v('f-op'), result: v('f-result'), success: v('f-success'), q: v('f-q') };
    }
    function params() {
      const out = { type: f.type, operation_name: f.operation_name, result: f.result, success: f.success, q: f.q,
        limit: PAGE_SIZE, before_seq: before };
      if (f.range === 'custom') { out.since = fromLocalInput(f.since); out.until = fromLocalInput(f.until); }
      else out.since = sinceFor(f.range);
      return out;
    }
    function writeHash() {
      const h = { ...f };
      if (h.range === 'all') delete h.range;
      if (f.range !== 'custom') { delete h.since; delete h.until; }
      if (before) h.before_seq = before;
      const hash = searchHref(h);
      history.replaceState(null, '', hash);
      lastSearchHash = hash;
      updateNav('search');
    }
    function apply() {
      clearTimeout(timer);
      f = read();
      custom.hidden = f.range !== 'custom';
      before = '';
      newer.length = 0;
      writeHash();
      app.refresh(true);
    }
    function reset() {
      form.reset();
      for (const n of form.querySelectorAll('input')) n.value = '';
      for (const n of form.querySelectorAll('select')) n.selectedIndex = 0;
      apply();
    }
    function goOlder() { if (oldest == null) return; newer.push(before); before = String(oldest); writeHash(); app.refresh(true); }
    function goNewer() { before = newer.length ? newer.pop() : ''; writeHash(); app.refresh(true); }
    function goNewest() { before = ''; newer.length = 0; writeHash(); app.refresh(true); }

    async function refresh(force) {
      const data = await api('items', params());
      if (!seen(data, force)) return;
      const items = data.items || [];
      oldest = items.length ? items[items.length - 1].seq : null;
      const capped = data.total >= 100000 ? '100000+' : data.total;
      status.textContent = items.length
        ? `${capped} matching item${data.total === 1 ? '' : 's'}; showing ${items.length}${before ? ` older than #${before}` : ', newest first'}.`
        : '';
      newerBtn.disabled = !before;
      newestBtn.disabled = !before;
      olderBtn.disabled = items.length < PAGE_SIZE;
      if (!items.length) {
        fill(results, empty(data.total ? 'No more items on this page.' : 'No items match these filters.'));
        return;
      }
      const cols = [['Time'], ['Type'], ['Name', 'wide'], ['Result'], ['Duration', 'num'], ['Role'], ['Operation']];
      fill(results, table(cols, items.map((s) => ({
        attrs: { 'data-testid': 'search-row', 'data-seq': s.seq, 'data-type': s.type, class: `clickable ${s.success === false ? 'failed' : ''}`,
          onclick: (e) => { if (!e.target.closest('a')) location.hash = itemHref(s); } },
        cells: [
          el('time', { datetime: s.time, title: s.time }, fmtTime(s.time)),
          typeBadge(s.type),
          el('a', { href: itemHref(s), class: 'name', title: s.message && s.message !== s.name ? s.message : null }, s.name || s.message || '(no name)'),
          outcome(s),
          fmtDur(s.duration_ms),
          s.role || '',
          s.operation_name || '',
        ],
      })), { cls: 'search' }));
    }
    return { refresh, editing: () => form.contains(document.activeElement) };
  }

  // ---------- item fields ----------
  function valueNode(v) {
    if (v == null) return el('span', { class: 'muted' }, String(v));
    if (typeof v === 'object') return el('pre', { class: 'json' }, JSON.stringify(v, null, 2));
    const s = String(v);
    return s.length > 120 || s.includes('\n') ? el('pre', { class: 'long' }, s) : s;
  }
  function kvList(obj, sectionName) {
    const entries = Object.entries(obj || {});
    if (!entries.length) return el('p', { class: 'muted' }, 'none');
    return el('dl', { class: 'kv' }, entries.map(([k, v]) => el('div', { 'data-testid': 'item-field', 'data-key': k, 'data-section': sectionName },
      el('dt', null, k), el('dd', null, valueNode(v)))));
  }
  function itemDetails(rec) {
    const env = rec.envelope || {};
    const data = env.data || {};
    const base = data.baseData || {};
    const top = { seq: rec.seq, received: rec.received };
    for (const [k, v] of Object.entries(env)) if (k !== 'data' && k !== 'tags') top[k] = v;
    top.baseType = data.baseType;
    const main = {};
    const exceptions = [];
    for (const [k, v] of Object.entries(base)) {
      if (k === 'properties' || k === 'measurements') continue;
      if (k === 'exceptions' && Array.isArray(v)) { exceptions.push(...v); continue; }
      main[k] = v;
    }
    const tags = env.tags || {};
    const op = tags['ai.operation.id'];
    return el('div', { class: 'item-details', 'data-seq': rec.seq },
      el('h3', null, typeBadge(data.baseType), ' ', base.name || (exceptions[0] && exceptions[0].typeName) || base.message || env.name || ''),
      el('p', { class: 'links' }, op ? [el('a', { href: opHref(op, rec.seq) }, 'End-to-end transaction'), ' · '] : null,
        el('a', { href: `#/item/${rec.seq}` }, `Item #${rec.seq}`), ' · ', el('a', { href: `api/items/${rec.seq}`, target: '_blank', rel: 'noopener' }, 'JSON')),
      el('h4', null, 'Item'), kvList(top, 'item'),
      el('h4', null, typeLabel(data.baseType)), kvList(main, 'data'),
      exceptions.map((x, i) => [el('h4', null, `Exception ${i + 1}`), kvList(x, 'exception')]),
      el('h4', null, 'Custom properties'), kvList(base.properties, 'properties'),
      base.measurements ? [el('h4', null, 'Measurements'), kvList(base.measurements, 'measurements')] : null,
      el('h4', null, 'Tags'), kvList(tags, 'tags'),
      el('details', { class: 'raw' }, el('summary', null, 'Raw JSON'), el('pre', { class: 'json' }, JSON.stringify(env, null, 2))));
  }
  const itemCache = new Map();
  async function loadItem(seq) {
    if (itemCache.has(seq)) return itemCache.get(seq);
    const rec = await api(`items/${encodeURIComponent(seq)}`);
    if (itemCache.size > 200) itemCache.clear();
    itemCache.set(seq, rec);
    return rec;
  }

  function ItemView(root, route) {
    const seq = route.arg;
    const body = el('div');
    root.append(el('h1', { class: 'view-title' }, `Item #${seq}`), body);
    let done = false;
    async function refresh() {
      if (done) return;
      try {
        fill(body, itemDetails(await loadItem(seq)));
        done = true;
      } catch (e) {
        fill(body, e.status === 404 ? empty(`Item #${seq} is not stored (evicted from the buffer, or never received).`) : errorBox(e));
        done = e.status === 404;
      }
    }
    return { refresh };
  }

  // ---------- operation: tree, timeline, details ----------
  function OperationView(root, route) {
    const opId = route.arg;
    let selected = route.params.seq ? Number(route.params.seq) : null;
    const seen = changeTracker();
    const head = el('div', { class: 'op-head' });
    const tree = el('div', { class: 'op-tree' });
    const details = el('div', { class: 'op-details' });
    root.append(el('h1', { class: 'view-title' }, 'End-to-end transaction'), head,
      el('div', { class: 'op-layout' }, section('Timeline', tree), el('section', { class: 'panel' }, el('h2', null, 'Details'), details)));
    let bySeq = new Map();

    function flatten(nodes, depth, out) {
      for (const n of nodes || []) {
        out.push({ seq: n.seq, depth });
        flatten(n.children, depth + 1, out);
      }
      return out;
    }
    async function refresh(force) {
      let data;
      try { data = await api(`operations/${encodeURIComponent(opId)}`); } catch (e) {
        if (e.status !== 404) throw e;
        data = { operation_id: opId, items: [], tree: [] };
      }
      if (!seen(data, force)) return;
      const items = data.items || [];
      bySeq = new Map(items.map((s) => [s.seq, s]));
      if (!items.length) {
        fill(head, el('p', null, 'Operation ', el('code', null, opId)));
        fill(tree, empty('No stored items for this operation (evicted, or not received yet).'));
        fill(details);
        return;
      }
      const rows = flatten(data.tree, 0, []);
      const inTree = new Set(rows.map((r) => r.seq));
      for (const s of items) if (!inTree.has(s.seq)) rows.push({ seq: s.seq, depth: 0 });
      const times = items.map((s) => parseTime(s.time)).filter((t) => !isNaN(t));
      const start = Math.min(...times);
      const end = Math.max(...items.map((s) => parseTime(s.time) + (s.duration_ms || 0)).filter((t) => !isNaN(t)));
      const span = Math.max(end - start, 1);
      const root0 = bySeq.get(rows[0].seq);
      const failed = items.filter((s) => s.success === false).length;
      fill(head, el('dl', { class: 'facts' },
        fact('Operation', root0.operation_name || root0.name || ''), fact('Id', el('code', null, opId)),
        fact('Started', el('time', { datetime: new Date(start).toISOString() }, fmtTime(new Date(start).toISOString(), true))),
        fact('Duration', fmtDur(end - start)), fact('Items', String(items.length)),
        fact('Failed', el('span', { class: failed ? 'fail' : 'ok' }, String(failed)))));

      const ticks = [0, 0.25, 0.5, 0.75, 1];
      const axis = el('div', { class: 'tl-row tl-axis', 'aria-hidden': 'true' }, el('span', { class: 'tl-label' }, 'Item'),
        el('span', { class: 'tl-track' }, ticks.map((x) => el('span', { class: 'tick', style: `left:${x * 100}%` }, fmtDur(x * span) || '0 ms'))));
      const list = el('ol', { class: 'tree', 'aria-label': 'Items of the operation, by parent' }, rows.map(({ seq, depth }) => {
        const s = bySeq.get(seq);
        if (!s) return null;
        const t = parseTime(s.time) - start;
        const left = Math.min(100, Math.max(0, (t / span) * 100));
        const bar = s.duration_ms != null
          ? el('span', { class: `bar ${typeClass(s.type)} ${s.success === false ? 'failed' : ''}`, style: `left:${left}%;width:${Math.max(0.4, Math.min(100 - left, (s.duration_ms / span) * 100))}%` })
          : el('span', { class: `mark ${typeClass(s.type)}`, style: `left:${left}%` });
        return el('li', { 'data-testid': 'tree-node', 'data-seq': seq, 'data-depth': depth, 'data-type': s.type },
          el('button', { type: 'button', class: 'tl-row', 'aria-current': seq === selected ? 'true' : null, style: `--depth:${depth}`, onclick: () => select(seq) },
            el('span', { class: 'tl-label' }, typeBadge(s.type), ' ', el('span', { class: 'name' }, s.name || s.message || ''),
              el('span', { class: 'sub' }, [s.role, s.result, s.duration_ms != null ? fmtDur(s.duration_ms) : `+${fmtDur(t) || '0 ms'}`].filter(Boolean).join(' · '))),
            el('span', { class: 'tl-track', title: `${fmtDur(t) || '0 ms'} after start${s.duration_ms != null ? `, ${fmtDur(s.duration_ms)}` : ''}` }, bar)));
      }));
      fill(tree, axis, list);
      if (selected == null || !bySeq.has(selected)) selected = rows[0].seq;
      showDetails(selected);
    }
    let shown = null;
    async function showDetails(seq) {
      for (const b of tree.querySelectorAll('.tl-row[aria-current]')) b.removeAttribute('aria-current');
      const li = tree.querySelector(`li[data-seq="${Number(seq)}"] .tl-row`);
      if (li) li.setAttribute('aria-current', 'true');
      if (shown === seq) return;
      shown = seq;
      try {
        const rec = await loadItem(seq);
        if (shown === seq) fill(details, itemDetails(rec));
      } catch (e) { fill(details, errorBox(e)); }
    }
    function select(seq) {
      selected = seq;
      history.replaceState(null, '', opHref(opId, seq));
      showDetails(seq);
      if (matchMedia('(max-width: 900px)').matches) details.scrollIntoView({ behavior: 'smooth', block: 'start' });
    }
    function update(r) {
      if (r.params.seq && Number(r.params.seq) !== selected) { selected = Number(r.params.seq); showDetails(selected); }
    }
    return { refresh, update };
  }
  function fact(k, v) {
    return el('div', null, el('dt', null, k), el('dd', null, v));
  }

  // ---------- failures ----------
  function FailuresView(root, route) {
    let range = route.params.range || 'all';
    const seen = changeTracker();
    const form = el('form', { class: 'filters', 'aria-label': 'Failures window' },
      field('Time range', rangeSelect('fl-range', range, (e) => { range = e.target.value === 'custom' ? 'all' : e.target.value; history.replaceState(null, '', `#/failures?range=${range}`); app.refresh(true); })));
    form.addEventListener('submit', (e) => e.preventDefault());
    const body = el('div');
    root.append(el('h1', { class: 'view-title' }, 'Failures'), form, body);
    const est = (g) => (g.estimated != null && Math.round(g.estimated) !== g.count ? el('span', { class: 'muted', title: 'weighted by 100/sampleRate' }, ` ≈${Math.round(g.estimated)}`) : null);
    function countCell(g, max) {
      return el('span', { class: 'count' }, el('span', { class: 'meter', style: `width:${Math.max(2, (g.count / max) * 100)}%`, 'aria-hidden': 'true' }), el('b', null, String(g.count)), est(g));
    }
    const maxOf = (gs) => Math.max(1, ...gs.map((g) => g.count || 0));
    function groupRow(kind, type, g, href, cells) {
      return { attrs: { 'data-testid': 'failure-group', 'data-kind': kind, 'data-type': type, 'data-count': g.count, class: 'clickable',
        onclick: (e) => { if (!e.target.closest('a')) location.hash = href; } }, cells };
    }
    async function refresh(force) {
      const data = await api('failures', { since: sinceFor(range) });
      if (!seen(data, force)) return;
      const ex = data.exceptions || [];
      const fr = data.failed_requests || [];
      const fd = data.failed_dependencies || [];
      const exMax = maxOf(ex); const frMax = maxOf(fr); const fdMax = maxOf(fd);
      fill(body, el('div', { class: 'grid-3' },
        section(`Exceptions (${ex.reduce((a, g) => a + g.count, 0)})`, ex.length ? table([['Type', 'wide'], ['Operation'], ['Count', 'num'], ['Last']], ex.map((g) => {
          const href = searchHref({ type: 'ExceptionData', operation_name: g.operation_name, q: g.type });
          return groupRow('exception', g.type, g, href, [el('a', { href }, g.type || '(none)'), g.operation_name || '', countCell(g, exMax),
            g.last_seq != null ? el('a', { href: `#/item/${g.last_seq}` }, `#${g.last_seq}`) : '']);
        })) : empty('No exceptions.')),
        section(`Failed requests (${fr.reduce((a, g) => a + g.count, 0)})`, fr.length ? table([['Operation', 'wide'], ['Result'], ['Count', 'num']], fr.map((g) => {
          const href = searchHref({ type: 'RequestData', operation_name: g.operation_name, result: g.result, success: 'false' });
          return groupRow('request', 'RequestData', g, href, [el('a', { href }, g.operation_name || '(none)'), el('span', { class: 'fail' }, g.result || ''), countCell(g, frMax)]);
        })) : empty('No failed requests.')),
        section(`Failed dependencies (${fd.reduce((a, g) => a + g.count, 0)})`, fd.length ? table([['Target', 'wide'], ['Result'], ['Count', 'num']], fd.map((g) => {
          const href = searchHref({ type: 'RemoteDependencyData', success: 'false', q: g.target });
          return groupRow('dependency', 'RemoteDependencyData', g, href, [el('a', { href }, g.target || '(none)'), el('span', { class: 'fail' }, g.result || ''), countCell(g, fdMax)]);
        })) : empty('No failed dependencies.'))));
    }
    return { refresh, editing: () => form.contains(document.activeElement) };
  }

  // ---------- metrics ----------
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  // A small chart: bars (one series) or lines (several), positioned by time.
  function chart({ title, buckets, bucketMs, series, kind, unit, fmt, width, log }) {
    const W = Math.max(260, Math.round(width || 600)); const H = 170; const L = 48; const R = 8; const T = 10; const B = 22;
    const t0 = parseTime(buckets[0].start);
    const t1 = parseTime(buckets[buckets.length - 1].start) + bucketMs;
    const span = Math.max(t1 - t0, 1);
    const x = (t) => L + ((t - t0) / span) * (W - L - R);
    const vals = series.flatMap((s) => buckets.map((b) => b[s.key])).filter((v) => v != null && !isNaN(v));
    const max = log ? 10 ** Math.ceil(Math.log10(Math.max(1, ...vals))) : niceMax(Math.max(0, ...vals));
    const lo = log ? 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...vals.filter((v) => v > 0), max)))) : 0;
    const y = log
      ? (v) => T + (1 - Math.log10(Math.max(v, lo) / lo) / Math.log10(max / lo || 10)) * (H - T - B)
      : (v) => T + (1 - v / max) * (H - T - B);
    const f = fmt || fmtNum;
    const g = [];
    const levels = [];
    if (log) for (let v = lo; v <= max * 1.001; v *= 10) levels.push(v);
    else levels.push(0, max / 2, max);
    for (const v of levels) {
      g.push(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      g.push(svg('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, f(v)));
    }
    const lastStart = new Date(t1 - bucketMs).toISOString();
    g.push(svg('text', { x: L, y: H - 6, class: 'axis' }, fmtTime(buckets[0].start).slice(0, 8)));
    g.push(svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis' }, fmtTime(lastStart).slice(0, 8)));
    if (kind === 'bars') {
      const s = series[0];
      const bw = Math.max(1, ((W - L - R) * bucketMs) / span - 1);
      for (const b of buckets) {
        const v = b[s.key] || 0;
        if (!v) continue;
        g.push(svg('rect', { x: x(parseTime(b.start)), y: y(v), width: bw, height: Math.max(0.5, y(0) - y(v)), class: `s-${s.cls}` },
          svg('title', null, `${fmtTime(b.start)}: ${f(v)}${unit ? ` ${unit}` : ''}`)));
      }
    } else {
      for (const s of series) {
        let pts = [];
        const flush = () => { if (pts.length) g.push(svg('polyline', { points: pts.join(' '), class: `line s-${s.cls}` })); pts = []; };
        for (const b of buckets) {
          const v = b[s.key];
          if (v == null || isNaN(v)) { flush(); continue; }
          const cx = x(parseTime(b.start) + bucketMs / 2);
          pts.push(`${cx.toFixed(1)},${y(v).toFixed(1)}`);
          g.push(svg('circle', { cx, cy: y(v), r: 2.2, class: `dot s-${s.cls}` }, svg('title', null, `${s.name} ${fmtTime(b.start)}: ${f(v)}${unit ? ` ${unit}` : ''}`)));
        }
        flush();
      }
    }
    const total = series.map((s) => `${s.name}: max ${f(Math.max(0, ...buckets.map((b) => b[s.key] || 0)))}${unit ? ` ${unit}` : ''}`).join('; ');
    return el('figure', { class: 'chart' },
      el('figcaption', null, title, series.length > 1 ? el('span', { class: 'legend' }, series.map((s) => el('span', { class: `key s-${s.cls}` }, s.name))) : null),
      svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': `${title}. ${total}` }, g));
  }
  function MetricsView(root, route) {
    let range = route.params.range || '1h';
    let bucket = Number(route.params.bucket_s) || 60;
    let scale = route.params.scale || 'auto';
    const seen = changeTracker();
    const write = () => { history.replaceState(null, '', `#/metrics?${qs({ range, bucket_s: bucket, scale: scale === 'auto' ? '' : scale })}`); app.refresh(true); };
    const form = el('form', { class: 'filters', 'aria-label': 'Metrics window' },
      field('Time range', rangeSelect('m-range', range, (e) => { range = e.target.value === 'custom' ? 'all' : e.target.value; write(); })),
      field('Interval', el('select', { id: 'm-bucket', onchange: (e) => { bucket = Number(e.target.value); write(); } },
        [[10, '10 s'], [60, '1 min'], [300, '5 min'], [900, '15 min'], [3600, '1 hour']].map(([v, l]) => el('option', { value: v, selected: v === bucket }, l)))),
      field('Duration scale', el('select', { id: 'm-scale', onchange: (e) => { scale = e.target.value; write(); } },
        [['auto', 'Auto'], ['linear', 'Linear'], ['log', 'Logarithmic']].map(([v, l]) => el('option', { value: v, selected: v === scale }, l)))));
    form.addEventListener('submit', (e) => e.preventDefault());
    const body = el('div');
    root.append(el('h1', { class: 'view-title' }, 'Metrics'), form, body);
    async function refresh(force) {
      const data = await api('metrics', { since: sinceFor(range), bucket_s: bucket });
      if (!seen(data, force)) return;
      const bs = data.buckets || [];
      const sum = (k) => bs.reduce((a, b) => a + (b[k] || 0), 0);
      const req = sum('requests'); const failed = sum('failed');
      const source = data.source === 'standard_metrics'
        ? 'Source: standard metrics (requests/*, dependencies/*, exceptions/count pre-aggregated by the gateway from every exchange: exact under sampling).'
        : 'Source: items, each counted 100/sampleRate times (extrapolated under sampling, as the portal does without standard metrics).';
      const tiles = el('dl', { class: 'tiles' },
        tile('Requests', el('span', { 'data-testid': 'metric-requests-total' }, fmtNum(req))),
        tile('Failed requests', el('span', { class: failed ? 'fail' : '' }, fmtNum(failed))),
        tile('Failure rate', req ? `${((failed / req) * 100).toFixed(1)} %` : '–'),
        tile('Dependencies', fmtNum(sum('dependencies'))),
        tile('Exceptions', fmtNum(sum('exceptions'))));
      const bucketMs = bucket * 1000;
      const per = { 10: '10 s', 60: 'minute', 300: '5 min', 900: '15 min', 3600: 'hour' }[bucket] || fmtDur(bucketMs);
      const p50s = bs.map((b) => b.duration_p50).filter((v) => v > 0).sort((a, b) => a - b);
      const p99max = Math.max(0, ...bs.map((b) => b.duration_p99 || 0));
      const logDur = scale === 'log' || (scale === 'auto' && p50s.length > 0 && p99max > 20 * p50s[p50s.length >> 1]);
      const cw = body.clientWidth || root.clientWidth || 600;
      const width = (cw >= 880 ? (cw - 12) / 2 : cw) - 24;
      const charts = bs.length ? el('div', { class: 'charts' },
        chart({ title: `Requests per ${per}`, width, buckets: bs, bucketMs, kind: 'bars', series: [{ key: 'requests', name: 'Requests', cls: 'req' }] }),
        chart({ title: `Failed requests per ${per}`, width, buckets: bs, bucketMs, kind: 'bars', series: [{ key: 'failed', name: 'Failed', cls: 'fail' }] }),
        chart({ title: `Request duration${logDur ? ' (log scale)' : ''}`, width, log: logDur, buckets: bs, bucketMs, kind: 'lines', unit: '', fmt: (v) => fmtDur(v) || '0',
          series: [{ key: 'duration_p50', name: 'p50', cls: 'p50' }, { key: 'duration_p95', name: 'p95', cls: 'p95' }, { key: 'duration_p99', name: 'p99', cls: 'p99' }] }),
        chart({ title: `Dependency calls per ${per}`, width, buckets: bs, bucketMs, kind: 'bars', series: [{ key: 'dependencies', name: 'Dependencies', cls: 'dep' }] }))
        : empty('No requests in this window.');
      const custom = (data.custom || []).map((m) => {
        const dims = [...new Set((m.series || []).flatMap((s) => Object.keys(s.dimensions || {})))];
        return el('div', { class: 'custom-metric', 'data-testid': 'custom-metric', 'data-name': m.name },
          el('h3', null, m.name, m.namespace ? el('span', { class: 'muted' }, ` (${m.namespace})`) : null),
          table([...dims.map((d) => [d]), ['Count', 'num'], ['Sum', 'num'], ['Min', 'num'], ['Max', 'num'], ['Average', 'num']],
            (m.series || []).map((s) => ({ cells: [...dims.map((d) => (s.dimensions || {})[d] ?? ''),
              fmtNum(s.count), fmtNum(s.sum), fmtNum(s.min), fmtNum(s.max), s.count ? fmtNum(s.sum / s.count) : ''] }))));
      });
      fill(body, el('p', { class: 'source', 'data-testid': 'metric-source', 'data-source': data.source || '' }, source), tiles, charts,
        section('Custom metrics', custom.length ? custom : empty('No custom metrics in this window.')));
    }
    let rt = 0;
    let lastW = root.clientWidth;
    const onResize = () => { clearTimeout(rt); rt = setTimeout(() => { if (!root.isConnected) { window.removeEventListener('resize', onResize); return; } if (Math.abs(root.clientWidth - lastW) > 20) { lastW = root.clientWidth; refresh(true); } }, 200); };
    window.addEventListener('resize', onResize);
    return { refresh, editing: () => form.contains(document.activeElement) };
  }
  function tile(k, v) {
    return el('div', { class: 'tile' }, el('dt', null, k), el('dd', null, v));
  }

  // ---------- availability ----------
  function AvailabilityView(root) {
    const seen = changeTracker();
    const body = el('div');
    root.append(el('h1', { class: 'view-title' }, 'Availability'), body);
    async function refresh(force) {
      const data = await api('availability');
      if (!seen(data, force)) return;
      const tests = data.tests || [];
      if (!tests.length) { fill(body, empty('No availability results stored.')); return; }
      fill(body, el('div', { class: 'avail-grid' }, tests.map((t) => {
        const rate = t.runs ? (t.passed / t.runs) * 100 : 0;
        const last = t.last || {};
        const results = (t.results || []).slice().reverse(); // oldest on the left
        return el('article', { class: 'panel avail', 'data-testid': 'availability-test', 'data-name': t.name, 'data-location': t.location, 'data-pass-rate': rate.toFixed(1) },
          el('h2', null, t.name, el('span', { class: 'loc' }, t.location)),
          el('p', { class: 'rate' }, el('strong', { class: rate >= 99 ? 'ok' : rate >= 90 ? 'warn' : 'fail' }, `${rate.toFixed(1)} %`),
            ` passed (${t.passed} of ${t.runs} runs)`),
          el('p', { class: 'last' }, 'Last: ', el('span', { class: last.success ? 'ok' : 'fail' }, last.success ? 'passed' : 'failed'),
            ' at ', el('time', { datetime: last.time }, fmtTime(last.time)), last.duration_ms != null ? ` in ${fmtDur(last.duration_ms)}` : '',
            last.message ? el('span', { class: 'msg' }, last.message) : null),
          el('div', { class: 'strip', role: 'list', 'aria-label': `Last ${results.length} results, oldest first` }, results.map((r) => el('a', {
            role: 'listitem', href: itemHref(r), class: `res ${r.success ? 'pass' : 'fail'}`,
            title: `${fmtTime(r.time)} ${r.success ? 'passed' : 'failed'}${r.message ? `: ${r.message}` : ''}`,
            'aria-label': `${fmtTime(r.time)} ${r.success ? 'passed' : 'failed'}`,
          }))));
      })));
    }
    return { refresh };
  }

  // ---------- rejected ----------
  function RejectedView(root) {
    const seen = changeTracker();
    const body = el('div');
    root.append(el('h1', { class: 'view-title' }, 'Rejected items'),
      el('p', { class: 'muted' }, 'Lines the endpoint refused: they failed the schema validation, as the real ingestion endpoint would refuse them.'), body);
    async function refresh(force) {
      const data = await api('rejected', { limit: 200 });
      if (!seen(data, force)) return;
      const items = data.items || [];
      if (!items.length) { fill(body, empty('Nothing rejected.')); return; }
      fill(body, el('ol', { class: 'rejected' }, items.map((r) => {
        const line = String(r.line || '');
        return el('li', { class: 'panel', 'data-testid': 'rejected-row', 'data-index': r.index },
          el('p', { class: 'meta' }, el('time', { datetime: r.received }, fmtTime(r.received)), ` · index ${r.index} in its batch`),
          el('p', { class: 'fail reason', 'data-testid': 'rejected-reason' }, r.reason || ''),
          line.length > 240
            ? el('details', null, el('summary', null, el('code', null, `${line.slice(0, 240)}…`)), el('pre', { class: 'long' }, line))
            : el('pre', { class: 'long' }, line));
      })));
    }
    return { refresh };
  }

  function NotFound(root, route) {
    root.append(el('h1', { class: 'view-title' }, 'Not found'), el('p', null, `No view named “${route.view}”. `, el('a', { href: '#/search' }, 'Transaction search')));
    return { refresh: async () => {} };
  }

  // ---------- header, router, live refresh ----------
  const VIEWS = { search: SearchView, operation: OperationView, item: ItemView, failures: FailuresView,
    metrics: MetricsView, availability: AvailabilityView, rejected: RejectedView };
  const NAV = { operation: 'search', item: 'search' };
  let lastSearchHash = '#/search';

  function parseHash() {
    const h = location.hash.replace(/^#\/?/, '');
    const qi = h.indexOf('?');
    const path = qi < 0 ? h : h.slice(0, qi);
    const params = Object.fromEntries(new URLSearchParams(qi < 0 ? '' : h.slice(qi + 1)));
    const parts = path.split('/');
    let arg = parts.slice(1).join('/');
    try { arg = decodeURIComponent(arg); } catch (_) { /* keep as is */ }
    return { view: parts[0] || 'search', arg, params };
  }
  function updateNav(view) {
    const active = NAV[view] || view;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.view === 'search') a.setAttribute('href', lastSearchHash);
      if (a.dataset.view === active) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
  }
  let summarySeen = changeTracker();
  async function loadSummary(force) {
    const s = await api('summary');
    if (!summarySeen(s, force)) return;
    const by = s.by_type || {};
    fill($('#summary'), 
      el('span', { class: 'stat', 'data-testid': 'summary-items' }, el('b', null, String(s.items ?? 0)), ' items',
        s.capacity ? el('span', { class: 'muted' }, ` / ${s.capacity}`) : null),
      el('a', { class: `stat ${s.rejected ? 'fail' : ''}`, href: '#/rejected', 'data-testid': 'summary-rejected' }, el('b', null, String(s.rejected ?? 0)), ' rejected'),
      TYPES.filter(([t]) => by[t]).map(([t, l]) => el('a', { class: `stat chip ${typeClass(t)}`, href: searchHref({ type: t }), 'data-type': t, 'data-count': by[t] },
        el('b', null, String(by[t])), ` ${l}`)));
  }

  const app = {
    current: null,
    busy: false,
    navigate() {
      const route = parseHash();
      const key = `${route.view}/${route.arg}`;
      if (route.view === 'search') lastSearchHash = location.hash || '#/search';
      updateNav(route.view);
      if (this.current && this.current.key === key && this.current.inst.update) {
        this.current.inst.update(route);
        return;
      }
      const main = $('#main');
      main.replaceChildren();
      const V = VIEWS[route.view] || NotFound;
      this.current = { key, inst: V(main, route) };
      const h1 = $('h1', main);
      document.title = `${h1 ? h1.textContent : 'Telemetry'} · appinsights-local`;
      main.focus({ preventScroll: true });
      this.refresh(true);
    },
    async refresh(force) {
      const cur = this.current;
      if (!cur) return;
      this.busy = true;
      try {
        await Promise.all([loadSummary(force), cur.inst.refresh(force)]);
        setStatus(`Updated ${fmtTime(new Date().toISOString()).slice(0, 8)}`, '');
        $('#error').hidden = true;
      } catch (e) {
        setStatus(e.status ? 'Server error' : 'Server unreachable', 'st-error');
        const box = $('#error');
        box.textContent = `Could not load: ${e.message}. ${$('#live').checked ? 'Retrying every 2 s.' : ''}`;
        box.hidden = false;
      } finally {
        this.busy = false;
      }
    },
  };

  function setStatus(text, cls) {
    const s = $('#status');
    s.textContent = text;
    s.className = cls;
  }
  function editing() {
    const a = document.activeElement;
    if (!a || !a.closest('.filters')) return false;
    return /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }
  function tick() {
    const live = $('#live');
    if (!live.checked || document.hidden || app.busy) return;
    if (editing()) { setStatus('Paused while you edit a filter', 'st-paused'); return; }
    app.refresh(false);
  }

  function start() {
    const live = $('#live');
    try { live.checked = localStorage.getItem('appinsights-local.live') !== 'off'; } catch (_) { /* private mode */ }
    live.addEventListener('change', () => {
      try { localStorage.setItem('appinsights-local.live', live.checked ? 'on' : 'off'); } catch (_) { /* ignore */ }
      setStatus(live.checked ? 'Live' : 'Paused', live.checked ? '' : 'st-paused');
      if (live.checked) app.refresh(false);
    });
    window.addEventListener('hashchange', () => app.navigate());
    document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); });
    if (!location.hash) history.replaceState(null, '', '#/search');
    app.navigate();
    setInterval(tick, POLL_MS);
  }
  // Exposed for tests and the console.
  window.appinsightsLocal = { esc, parseTime, fmtDur, refresh: () => app.refresh(true) };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
