// Screenshots of every view, desktop and phone, light and dark, through the DevTools protocol:
//   node --experimental-websocket local/ui/dev/shots.mjs [outdir]   (fixture server on :8099)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const base = process.env.BASE || 'http://127.0.0.1:8099/';
const out = process.argv[2] || '/tmp';
const profile = mkdtempSync(`${tmpdir()}/viewer-check-`);
const chrome = spawn('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank'], { stdio: 'ignore' });
const devtoolsPort = () => (existsSync(`${profile}/DevToolsActivePort`) ? readFileSync(`${profile}/DevToolsActivePort`, 'utf8').split('\n')[0] : 'none');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let ws; let id = 0; const pending = new Map();
const send = (method, params = {}) => new Promise((res, rej) => { const i = ++id; pending.set(i, { res, rej }); ws.send(JSON.stringify({ id: i, method, params })); });
async function target() {
  for (let i = 0; i < 50; i++) {
    try { const p = (await (await fetch(`http://127.0.0.1:${devtoolsPort()}/json/list`)).json()).find((t) => t.type === 'page'); if (p) return p.webSocketDebuggerUrl; } catch (_) { /* not up yet */ }
    await sleep(200);
  }
  throw new Error('chromium did not start');
}
try {
  ws = new WebSocket(await target());
  await new Promise((r) => ws.addEventListener('open', r));
  ws.addEventListener('message', (m) => { const d = JSON.parse(m.data); const p = pending.get(d.id); if (p) { pending.delete(d.id); d.error ? p.rej(new Error(d.error.message)) : p.res(d.result); } });
  await send('Page.enable');
  const op = (await (await fetch(`${base}api/items?type=ExceptionData&limit=1`)).json()).items[0].operation_id;
  const views = { search: '#/search', op: `#/operation/${op}`, failures: '#/failures', metrics: '#/metrics', availability: '#/availability', rejected: '#/rejected' };
  for (const [w, h, tag] of [[1280, 900, 'desktop'], [390, 844, 'phone'], [320, 640, 'phone320']]) {
    for (const dark of [false, true]) {
      await send('Emulation.setDeviceMetricsOverride', { width: w, height: h, deviceScaleFactor: 1, mobile: w < 500 });
      await send('Emulation.setEmulatedMedia', { features: [{ name: 'prefers-color-scheme', value: dark ? 'dark' : 'light' }] });
      for (const [name, hash] of Object.entries(views)) {
        if (dark && tag !== 'desktop' && name !== 'op') continue;
        await send('Page.navigate', { url: base + hash });
        await sleep(1200);
        const { data } = await send('Page.captureScreenshot', { format: 'png' });
        const file = `${out}/${tag}${dark ? '-dark' : ''}-${name}.png`;
        writeFileSync(file, Buffer.from(data, 'base64'));
        console.log(file);
      }
    }
  }
} finally { chrome.kill(); await new Promise((r) => { chrome.on('exit', r); setTimeout(r, 3000); }); rmSync(profile, { recursive: true, force: true }); }
