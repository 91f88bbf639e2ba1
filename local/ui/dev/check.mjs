// Drives the page in headless Chromium over the DevTools protocol and checks the main flows
// against the fixture server: python3 local/ui/dev/serve.py --live & node --experimental-websocket local/ui/dev/check.mjs
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
const base = process.env.BASE || 'http://127.0.0.1:8099/';
const profile = mkdtempSync(`${tmpdir()}/viewer-check-`);
const chrome = spawn('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-port=0', `--user-data-dir=${profile}`, '--window-size=1280,900', 'about:blank'], { stdio: 'ignore' });
const devtoolsPort = () => (existsSync(`${profile}/DevToolsActivePort`) ? readFileSync(`${profile}/DevToolsActivePort`, 'utf8').split('\n')[0] : 'none');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let ws, id = 0; const pending = new Map();
async function connect() {
  for (let i = 0; i < 50; i++) {
    try { const l = await (await fetch(`http://127.0.0.1:${devtoolsPort()}/json/list`)).json(); const p = l.find((t) => t.type === 'page'); if (p) return p.webSocketDebuggerUrl; } catch (_) {}
    await sleep(200);
  }
  throw new Error('no chrome');
}
function send(method, params = {}) {
  return new Promise((res, rej) => { const i = ++id; pending.set(i, { res, rej }); ws.send(JSON.stringify({ id: i, method, params })); });
}
async function ev(expr) {
  const r = await send('Runtime.evaluate', { expression: `(async () => { ${expr} })()`, awaitPromise: true, returnByValue: true });
  if (r.exceptionDetails) throw new Error(JSON.stringify(r.exceptionDetails).slice(0, 500));
  return r.result.value;
}
async function waitFor(expr, ms = 5000) {
  const t = Date.now();
  while (Date.now() - t < ms) { if (await ev(`return !!(${expr})`)) return true; await sleep(100); }
  throw new Error('timeout waiting for ' + expr);
}
let fails = 0;
function check(name, cond, extra) { console.log(`${cond ? 'ok  ' : 'FAIL'} ${name}${extra !== undefined ? ' ' + JSON.stringify(extra) : ''}`); if (!cond) fails++; }
const errors = [];
try {
  ws = new WebSocket(await connect());
  await new Promise((r) => ws.addEventListener('open', r));
  ws.addEventListener('message', (m) => { const d = JSON.parse(m.data); if (d.id && pending.has(d.id)) { const p = pending.get(d.id); pending.delete(d.id); d.error ? p.rej(new Error(d.error.message)) : p.res(d.result); } else if (d.method === 'Runtime.exceptionThrown') errors.push(d.params.exceptionDetails.exception?.description || d.params.exceptionDetails.text); else if (d.method === 'Runtime.consoleAPICalled' && d.params.type === 'error') errors.push(JSON.stringify(d.params.args.map((a) => a.value ?? a.description))); });
  await send('Runtime.enable'); await send('Page.enable');
  await send('Page.addScriptToEvaluateOnNewDocument', { source: 'window.alert = () => { window.__alerted = true; };' });
  await send('Page.navigate', { url: base + '#/search' });
  await waitFor(`document.querySelector('[data-testid=search-row]')`);
  const first = await ev(`return [...document.querySelectorAll('[data-testid=search-row]')].map(r => +r.dataset.seq)`);
  check('search rows newest first', first.every((s, i) => i === 0 || s < first[i - 1]), first.slice(0, 3));
  // paging
  await ev(`[...document.querySelectorAll('.pager button')].find(b => b.textContent.startsWith('Older')).click()`);
  await waitFor(`+document.querySelector('[data-testid=search-row]').dataset.seq < ${first[first.length - 1] + 1}`);
  check('older page', (await ev(`return location.hash`)).includes('before_seq='), await ev(`return location.hash`));
  await ev(`[...document.querySelectorAll('.pager button')].find(b => b.textContent.startsWith('Newest')).click()`);
  await waitFor(`!location.hash.includes('before_seq')`);
  // filter: type + text, focused input pauses polling
  await ev(`const s = document.querySelector('#f-type'); s.value = 'RequestData'; s.dispatchEvent(new Event('change', {bubbles: true}))`);
  await waitFor(`[...document.querySelectorAll('[data-testid=search-row]')].every(r => r.dataset.type === 'RequestData')`);
  check('type filter', true);
  await ev(`const q = document.querySelector('#f-result'); q.focus(); q.value = '504'; q.dispatchEvent(new Event('input', {bubbles: true}))`);
  await sleep(800);
  const rows504 = await ev(`return [...document.querySelectorAll('[data-testid=search-row] td:nth-child(4)')].map(t => t.textContent)`);
  check('result filter 504', rows504.length > 0 && rows504.every((t) => t === '504'), rows504.slice(0, 3));
  await sleep(2500);
  check('paused while editing', (await ev(`return document.querySelector('#status').textContent`)).includes('Paused'), await ev(`return document.querySelector('#status').textContent`));
  check('hash keeps filters', (await ev(`return location.hash`)).includes('result=504'));
  await ev(`document.activeElement.blur()`);
  // a header chip filters the search, also while on the search
  await ev(`document.querySelector('#summary a[data-type=ExceptionData]').click()`);
  await waitFor(`document.querySelector('#f-type').value === 'ExceptionData' && [...document.querySelectorAll('[data-testid=search-row]')].every(r => r.dataset.type === 'ExceptionData')`);
  check('header chip filters the search', true);
  await ev(`history.back()`);
  await waitFor(`document.querySelector('#f-result') && document.querySelector('#f-result').value === '504' && document.querySelector('[data-testid=search-row]')`);
  // click a row -> operation
  await ev(`document.querySelector('[data-testid=search-row] td:first-child').click()`);
  await waitFor(`document.querySelector('[data-testid=tree-node]')`);
  check('row click opens operation', (await ev(`return location.hash`)).startsWith('#/operation/'));
  const nodes = await ev(`return [...document.querySelectorAll('[data-testid=tree-node]')].map(n => n.dataset.type + '@' + n.dataset.depth)`);
  check('tree: gateway request > dependency, exception, trace', nodes[0] === 'RequestData@0' && nodes[1] === 'RemoteDependencyData@1' && nodes.includes('ExceptionData@1'), nodes);
  const sel = await ev(`return document.querySelector('.item-details').dataset.seq`);
  check('selected item details shown', !!sel, sel);
  await ev(`document.querySelector('[data-testid=tree-node][data-type=ExceptionData] button').click()`);
  await waitFor(`document.querySelector('.item-details [data-key=typeName]')`);
  check('exception fields', (await ev(`return document.querySelector('.item-details [data-key=typeName] dd').textContent`)) === 'Timeout');
  check('selection in hash', /seq=\d+/.test(await ev(`return location.hash`)));
  // back to search keeps filters
  await ev(`document.querySelector('#nav a[data-view=search]').click()`);
  await waitFor(`document.querySelector('#f-result') && document.querySelector('#f-result').value === '504'`);
  check('search nav remembers filters', true);
  // live refresh adds new rows
  await ev(`document.querySelector('.filters button.secondary').click()`);
  await sleep(500);
  const top1 = await ev(`return +document.querySelector('[data-testid=search-row]').dataset.seq`);
  await sleep(5000);
  const top2 = await ev(`return +document.querySelector('[data-testid=search-row]').dataset.seq`);
  check('live refresh brings new items', top2 > top1, [top1, top2]);
  await ev(`const l = document.querySelector('#live'); l.click()`);
  await sleep(300);
  const t3 = await ev(`return +document.querySelector('[data-testid=search-row]').dataset.seq`);
  await sleep(5000);
  check('live off stops refresh', t3 === await ev(`return +document.querySelector('[data-testid=search-row]').dataset.seq`));
  await ev(`document.querySelector('#live').click()`);
  // XSS fixture
  await send('Page.navigate', { url: base + '#/availability' });
  await waitFor(`document.querySelector('[data-testid=availability-test]')`);
  check('no script injected', !(await ev(`return window.__alerted`)) && (await ev(`return document.querySelectorAll('script').length`)) === 1);
  check('escaped name shown as text', (await ev(`return document.querySelector('[data-testid=availability-test] h2').textContent`)).includes('<script>'));
  await send('Page.navigate', { url: base + '#/failures' });
  await waitFor(`document.querySelector('[data-testid=failure-group]')`);
  await ev(`document.querySelector('[data-testid=failure-group][data-kind=request] td').click()`);
  await waitFor(`location.hash.startsWith('#/search') && document.querySelector('[data-testid=search-row]')`);
  check('failure group -> search', (await ev(`return location.hash`)).includes('success=false'), await ev(`return location.hash`));
  await send('Page.navigate', { url: base + '#/item/3' });
  await waitFor(`document.querySelector('[data-testid=item-field]')`);
  check('item view', true);
  await send('Page.navigate', { url: base + '#/operation/nope' });
  await waitFor(`document.querySelector('.empty')`);
  check('unknown operation message', true);
} catch (e) { console.log('ERROR', e.message); fails++; }
check('no page errors', errors.length === 0, errors);
chrome.kill(); await new Promise((r) => { chrome.on('exit', r); setTimeout(r, 3000); }); rmSync(profile, { recursive: true, force: true });
process.exit(fails ? 1 : 0);
