// The playground in a real browser: headless Chromium (started here, killed by PID) loads the built
// page from a loopback server on a free port; playwright-core drives it over CDP. Prints one line
// per check and `N passed, N failed`; exits 0 only when every check passed.
//
// Environment (scripts/playground-test.sh sets it): PLAYGROUND_DIR (the built page), CHROMIUM
// (the browser binary), PLAYWRIGHT_CORE (the playwright-core package directory), SCREENSHOT (PNG).
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const dir = process.env.PLAYGROUND_DIR && path.resolve(process.env.PLAYGROUND_DIR);
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.SCREENSHOT;
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

const STEP_MS = 10000;
const TOTAL_MS = 150000;
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.png': 'image/png' };

let browserProcess = null;
let userDataDir = null;

/** SIGKILL to Chromium's process group (its PID: it leads the group), then to the PID itself. */
function killBrowserNow() {
  const proc = browserProcess;
  if (!proc || !proc.pid) return;
  for (const target of [-proc.pid, proc.pid]) {
    try { process.kill(target, 'SIGKILL'); } catch (_) { /* already gone */ }
  }
}

/** Kills Chromium, waits (at most 5s) for it to exit, then removes its profile. */
async function killBrowser() {
  const proc = browserProcess;
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    killBrowserNow();
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
  } else {
    killBrowserNow(); // its renderers, should any outlive it
  }
  if (userDataDir) {
    try {
      fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    } catch (e) {
      console.log(`# could not remove ${userDataDir}: ${e.message}`);
    }
  }
}

// However node ends (timeout's SIGTERM, Ctrl-C, a crash), Chromium goes with it.
process.on('exit', () => {
  killBrowserNow();
  if (userDataDir) {
    try { fs.rmSync(userDataDir, { recursive: true, force: true }); } catch (_) { /* Chromium may still be writing */ }
  }
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => {
    console.log(`not ok - interrupted by ${sig}`);
    process.exit(1);
  });
}
process.stdout.on('error', () => {}); // a closed pipe (| head) is not a test failure

// A hard limit on the whole run: whatever hangs, Chromium is killed by its PID.
const watchdog = setTimeout(() => {
  console.log(`not ok - the browser test took over ${TOTAL_MS / 1000}s; Chromium (pid ${browserProcess && browserProcess.pid}) killed`);
  killBrowserNow();
  console.log('0 passed, 1 failed');
  process.exit(1);
}, TOTAL_MS);

function serve(root) {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
    const file = path.join(root, rel);
    if (!file.startsWith(path.resolve(root)) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function startChromium() {
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peerguard-chromium-'));
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--hide-scrollbars', '--force-device-scale-factor=1', '--force-color-profile=srgb', '--num-raster-threads=1', '--disable-partial-raster',
    `--user-data-dir=${userDataDir}`, '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', 'about:blank',
  ];
  // Its own process group, so that one kill takes the renderers and helpers too.
  browserProcess = spawn(chromiumBin, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`Chromium printed no DevTools URL in 30s: ${err.slice(-500)}`)), 30000);
    browserProcess.on('error', (e) => { clearTimeout(timer); reject(e); });
    browserProcess.on('exit', (code) => { clearTimeout(timer); reject(new Error(`Chromium exited with ${code}: ${err.slice(-500)}`)); });
    browserProcess.stderr.on('data', (chunk) => {
      err += chunk.toString();
      const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
}

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`ok - ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`not ok - ${name}: ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  }
}

async function text(page, sel) {
  return (await page.locator(sel).textContent({ timeout: STEP_MS })).trim();
}

/** Waits until the page shows `decision` (and `reason`, when given). */
async function expectDecision(page, decision, reason, policy) {
  const want = { decision, reason: reason || '—', policy };
  await page.waitForFunction((w) => {
    const t = (id) => document.getElementById(id).textContent.trim();
    return t('decision') === w.decision && t('reason') === w.reason && (!w.policy || t('decided-by') === w.policy);
  }, want, { timeout: STEP_MS }).catch(async () => {
    const got = { decision: await text(page, '#decision'), reason: await text(page, '#reason'), policy: await text(page, '#decided-by') };
    throw new Error(`expected ${JSON.stringify(want)}, the page shows ${JSON.stringify(got)}`);
  });
}

const POLICY = `mtls: strict
trustDomains: [cluster.local]
policies:
  - name: block-admin
    action: DENY
    rules:
      - to: [{operation: {paths: ["/api/admin*"]}}]
  - name: frontend-reads-api
    action: ALLOW
    rules:
      - from: [{source: {namespaces: ["frontend"]}}]
        to: [{operation: {methods: [GET], paths: ["/api/*"]}}]
`;

async function main() {
  if (!dir || !fs.existsSync(path.join(dir, 'index.html'))) throw new Error(`PLAYGROUND_DIR ${dir} has no index.html`);
  const server = await serve(dir);
  const url = `http://127.0.0.1:${server.address().port}/`;
  console.log(`# page ${url}, Chromium ${chromiumBin}`);
  const ws = await startChromium();
  const browser = await chromium.connectOverCDP(ws, { timeout: 30000 });
  const context = browser.contexts()[0];
  const page = await context.newPage();
  await page.setViewportSize({ width: 1360, height: 1180 });
  page.setDefaultTimeout(STEP_MS);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });

  await check('the page loads the wasm engine and shows the first preset', async () => {
    await page.goto(url, { timeout: STEP_MS });
    await page.waitForSelector('body[data-ready="true"]', { timeout: STEP_MS });
    if (!(await text(page, '#version'))) throw new Error('no version in the footer');
    await expectDecision(page, 'allow', null, 'frontend-reads-api');
  });

  await check('a typed policy and request are allowed by the typed ALLOW policy', async () => {
    await page.fill('#policy', POLICY);
    await page.check('#peer-principal');
    await page.fill('#principal', 'cluster.local/ns/frontend/sa/web');
    await page.fill('#issuer', '');
    await page.fill('#at', '');
    await page.fill('#method', 'GET');
    await page.fill('#path', '/api/items');
    await expectDecision(page, 'allow', null, 'frontend-reads-api');
    const principal = await text(page, '#principal-out');
    if (principal !== 'cluster.local/ns/frontend/sa/web') throw new Error(`principal shown: ${principal}`);
    const facts = await text(page, '#cert-facts');
    if (!facts.includes('spiffe://cluster.local/ns/frontend/sa/web') || !facts.includes('O=cluster.local')) throw new Error(`facts: ${facts}`);
  });

  await check('another namespace is denied as you type: no_matching_allow', async () => {
    await page.fill('#principal', 'cluster.local/ns/other/sa/batch');
    await expectDecision(page, 'deny', 'no_matching_allow');
  });

  await check('an admin path is denied by the DENY policy: denied_by_policy', async () => {
    await page.fill('#principal', 'cluster.local/ns/frontend/sa/web');
    await page.fill('#path', '/api/admin/users');
    await expectDecision(page, 'deny', 'denied_by_policy', 'block-admin');
  });

  await check('an escaped slash is invalid_path with a 400', async () => {
    await page.fill('#path', '/api/a%2Fb');
    await expectDecision(page, 'deny', 'invalid_path');
    const status = await text(page, '#status');
    if (status !== 'HTTP 400') throw new Error(`status ${status}`);
  });

  await check('strict mTLS without a certificate: no_peer_certificate', async () => {
    await page.fill('#path', '/api/items');
    await page.check('#peer-none');
    await expectDecision(page, 'deny', 'no_peer_certificate');
  });

  await check('an invalid policy shows its errors with their paths, and config_invalid', async () => {
    await page.fill('#policy', POLICY.replace('"/api/admin*"', '"api/admin"'));
    await expectDecision(page, 'deny', 'config_invalid');
    const errors = await text(page, '#errors');
    if (!errors.includes('policies[0].rules[0].to[0].operation.paths[0]')) throw new Error(`errors: ${errors}`);
  });

  await check('every preset shows the decision it documents', async () => {
    const presets = await page.evaluate(() => window.playground.presets.map((p) => ({ id: p.id, expect: p.expect })));
    if (presets.length < 10) throw new Error(`${presets.length} presets`);
    for (const p of presets) {
      await page.selectOption('#preset', p.id);
      await expectDecision(page, p.expect.decision, p.expect.reason).catch((e) => { throw new Error(`${p.id}: ${e.message}`); });
    }
  });

  await check('the expired-certificate preset shows the facts the engine read', async () => {
    await page.selectOption('#preset', 'expired');
    await expectDecision(page, 'deny', 'expired');
    const facts = await text(page, '#cert-facts');
    for (const want of ['CN=expired', 'CN=intermediate-ca,O=cluster.local', 'spiffe://cluster.local/ns/default/sa/expired', '2030-06-01T10:00:00Z', 'ecdsaP256', 'expired 2h before the request']) {
      if (!facts.includes(want)) throw new Error(`${want} not in ${facts}`);
    }
  });

  await check('the page raised no script errors and stayed ready', async () => {
    if (pageErrors.length) throw new Error(pageErrors.join('; '));
    const ready = await page.evaluate(() => document.body.dataset.ready);
    if (ready !== 'true') throw new Error(`body data-ready is ${ready}`);
  });

  if (screenshot) {
    await check('screenshot', async () => {
      await page.selectOption('#preset', 'admin-path');
      await page.fill('#at', '2030-01-01T12:00:00Z');
      await expectDecision(page, 'deny', 'denied_by_policy', 'block-admin');
      await page.locator('#at').blur();
      await page.screenshot({ path: screenshot, fullPage: false, timeout: STEP_MS });
      if (fs.statSync(screenshot).size < 10000) throw new Error('the screenshot is suspiciously small');
    });
  }

  await browser.close().catch(() => {});
  await killBrowser();
  await new Promise((resolve) => server.close(resolve));
}

main()
  .catch((e) => {
    results.push(false);
    console.log(`not ok - the browser test could not run: ${e && e.message ? e.message : e}`);
    return killBrowser();
  })
  .finally(() => {
    clearTimeout(watchdog);
    const passed = results.filter(Boolean).length;
    const failed = results.length - passed;
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed === 0 && passed > 0 ? 0 : 1);
  });
