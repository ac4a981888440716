// Browser end-to-end tests: Playwright drives Debian's Chromium (never a downloaded browser)
// against a running Albedo (ALBEDO_URL), as a person would. `cargo xtask test` starts the
// server the way `cargo xtask demo` does and runs this file. Pixels are checked against values
// computed on the CPU here, with geotiff.js, from the same files the server read.
//
// Env: ALBEDO_URL (e.g. http://127.0.0.1:41234/), ALBEDO_ASSETS (the repo's assets/),
// ALBEDO_DIST (the built app, for its wasm size). Prints `browser tests: N passed, M failed`.

import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';
import { fromFile } from 'geotiff';
import { readdirSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const BASE = process.env.ALBEDO_URL;
const ASSETS = process.env.ALBEDO_ASSETS;
const DIST = process.env.ALBEDO_DIST;
const OUT = process.env.ALBEDO_BROWSER_OUT || '/tmp/albedo-browser';
if (!BASE || !ASSETS) {
  console.error('set ALBEDO_URL and ALBEDO_ASSETS (cargo xtask test does)');
  process.exit(2);
}
mkdirSync(OUT, { recursive: true });

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic',
];
const TEST_TIMEOUT_MS = 120_000;

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function api(path) {
  const r = await fetch(new URL(path, BASE));
  assert(r.ok, `${path}: HTTP ${r.status}`);
  return r.json();
}

/** The CPU twin of the renderer's stretch: clamp((v-min)/(max-min))^(1/gamma) as a byte. */
function stretch(v, min, max, gamma) {
  let t = (v - min) / (max - min);
  t = Math.min(1, Math.max(0, t));
  return Math.round(Math.pow(t, 1 / gamma) * 255);
}

function attrs(el) {
  return el.evaluate((c) => Object.fromEntries([...c.attributes].map((a) => [a.name, a.value])));
}

const nums = (s) => s.split(',').map(Number);

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

let page;

test('the catalog lists the bundled products by their real names', async () => {
  const started = Date.now();
  await page.goto(BASE);
  await page.waitForSelector('.product[data-product-id]', { timeout: 60_000 });
  console.log(`  page load to product list: ${Date.now() - started} ms`);
  const list = await api('/api/products');
  const local = list.products.filter((p) => p.pixels.kind === 'local');
  assert(local.length >= 5, `expected the bundled local products, API has ${local.length}`);
  const shown = await page.$$eval('.product[data-product-id]', (els) =>
    els.map((e) => [e.getAttribute('data-product-id'), e.textContent]));
  const shownIds = new Set(shown.map(([id]) => id));
  for (const p of local) {
    assert(shownIds.has(p.id), `local product ${p.id} is not listed on the page`);
    const row = shown.find(([id]) => id === p.id)[1];
    assert(row.includes(p.title), `row of ${p.id} does not show its title "${p.title}"`);
  }
  // The names come from the files in assets/, not from the code.
  const folders = readdirSync(join(ASSETS, 's2'));
  assert(folders.some((f) => f.startsWith('T33UUU')), 'assets/s2 has the T33UUU product');
  assert(local.some((p) => p.id.includes('T33UUU')), 'T33UUU product is in the catalog');
  const text = await page.textContent('body');
  assert(text.includes('33UUU'), 'the page shows the T33UUU product');
});

test('the render canvas draws real Sentinel-2 pixels (T33UUU true colour)', async () => {
  const list = await api('/api/products');
  const product = list.products.find((p) => p.id.includes('T33UUU') && p.pixels.kind === 'local');
  assert(product, 'no local T33UUU product');
  await page.click(`.product[data-product-id="${product.id}"]`);
  const canvas = page.locator('canvas#render');
  await page.waitForFunction(
    (id) => {
      const c = document.querySelector('canvas#render');
      return c && c.dataset.state === 'drawn' && c.dataset.product === id;
    },
    product.id,
    { timeout: 60_000 },
  );
  const a = await attrs(canvas);
  console.log(`  backend ${a['data-backend']}, bands ${a['data-bands']}, step ${a['data-step']}, ` +
    `min ${a['data-min']}, max ${a['data-max']}`);
  assert(a['data-bands'] === 'B04,B03,B02', `true colour bands, got ${a['data-bands']}`);
  const [wx, wy] = nums(a['data-window']);
  const step = Number(a['data-step']);
  const texW = Number(a['data-tex-width']);
  const texH = Number(a['data-tex-height']);
  const ox = Number(a['data-origin-x']);
  const oy = Number(a['data-origin-y']);
  const tpp = Number(a['data-texels-per-pixel']);
  const mins = nums(a['data-min']);
  const maxs = nums(a['data-max']);
  const gammas = nums(a['data-gamma']);

  const png = PNG.sync.read(await canvas.screenshot({ path: join(OUT, 't33uuu-true-colour.png') }));
  const cw = Number(a.width);
  const ch = Number(a.height);
  assert(png.width === cw && png.height === ch,
    `screenshot ${png.width}x${png.height} != canvas ${cw}x${ch} (device pixel ratio must be 1)`);

  // The same bands, read on the CPU from the files in assets/.
  const dir = join(ASSETS, 's2', readdirSync(join(ASSETS, 's2')).find((f) => f.startsWith('T33UUU')));
  const bands = [];
  for (const b of ['B04', 'B03', 'B02']) {
    const img = await (await fromFile(join(dir, `${b}.tif`))).getImage();
    const [r] = await img.readRasters({ samples: [0] });
    bands.push({ data: r, width: img.getWidth(), height: img.getHeight() });
  }
  const value = (band, gx, gy) => bands[band].data[gy * bands[band].width + gx];

  let checked = 0;
  let mismatches = [];
  const seen = new Set();
  for (let py = 3; py < ch; py += Math.floor(ch / 23)) {
    for (let px = 3; px < cw; px += Math.floor(cw / 31)) {
      const fx = ox + (px + 0.5) * tpp;
      const fy = oy + (py + 0.5) * tpp;
      const i = (py * png.width + px) * 4;
      const got = [png.data[i], png.data[i + 1], png.data[i + 2]];
      // Points on a texel border may round either way on the GPU: accept both neighbours.
      const near = (f) => (Math.abs(f - Math.round(f)) < 1e-3 ? [Math.round(f) - 1, Math.round(f)] : [Math.floor(f)]);
      const candidates = [];
      for (const tx of near(fx)) for (const ty of near(fy)) {
        if (tx < 0 || ty < 0 || tx >= texW || ty >= texH) continue;
        const gx = wx + tx * step;
        const gy = wy + ty * step;
        candidates.push([0, 1, 2].map((c) => stretch(value(c, gx, gy), mins[c], maxs[c], gammas[c])));
      }
      if (candidates.length === 0) continue; // outside the image: background
      checked += 1;
      seen.add(got.join(','));
      const ok = candidates.some((e) => e.every((v, c) => Math.abs(v - got[c]) <= 2));
      if (!ok) mismatches.push(`(${px},${py}) got ${got} expected ${candidates[0]}`);
    }
  }
  assert(checked >= 300, `only ${checked} sample points fell on the image`);
  assert(seen.size > 50, `the image is nearly uniform (${seen.size} distinct colours): not real pixels`);
  assert(mismatches.length === 0,
    `${mismatches.length}/${checked} pixels differ from the CPU: ${mismatches.slice(0, 5).join('; ')}`);
  console.log(`  ${checked} pixels equal the CPU's values (±2), ${seen.size} distinct colours`);
});

function wasmSize() {
  if (!DIST) return;
  const wasm = readdirSync(DIST).find((f) => f.endsWith('.wasm'));
  if (!wasm) return;
  const bytes = readFileSync(join(DIST, wasm));
  console.log(`wasm size: ${(bytes.length / 1e6).toFixed(2)} MB raw, ` +
    `${(gzipSync(bytes, { level: 9 }).length / 1e3).toFixed(0)} KB gzip (${wasm})`);
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
let passed = 0;
let failed = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  for (const t of tests) {
    const started = Date.now();
    try {
      await Promise.race([
        t.fn(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), TEST_TIMEOUT_MS)),
      ]);
      passed += 1;
      console.log(`ok - ${t.name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL - ${t.name}: ${e.message}`);
      await page.screenshot({ path: join(OUT, `failure-${failed}.png`) }).catch(() => {});
      console.log(consoleLines.slice(-20).map((l) => `    ${l}`).join('\n'));
    }
  }
  await page.screenshot({ path: join(OUT, 'page.png') });
  writeFileSync(join(OUT, 'console.log'), consoleLines.join('\n'));
  wasmSize();
} finally {
  await browser.close();
}
console.log(`browser tests: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
