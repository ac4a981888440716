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

/** Bands of the asset folder of a product, read on the CPU: `value(gx, gy)` at grid pixels. */
async function readBands(productId, names) {
  const s2 = readdirSync(join(ASSETS, 's2'));
  const folder = s2.find((f) => productId.includes(f.split('_')[0])) ||
    s2.find((f) => f.startsWith('T33UUU'));
  const dir = join(ASSETS, 's2', folder);
  const out = [];
  for (const b of names) {
    const img = await (await fromFile(join(dir, `${b}.tif`))).getImage();
    const [r] = await img.readRasters({ samples: [0] });
    const width = img.getWidth();
    out.push({ data: r, width, height: img.getHeight(), value: (gx, gy) => r[gy * width + gx] });
  }
  return out;
}

/**
 * Screenshots the canvas and compares about 700 pixels with `expected(gx, gy)` (RGB bytes,
 * ±2) at the grid pixel each one shows, using the canvas' `data-*` mapping. Throws on any
 * mismatch; returns the count checked and the set of distinct colours seen.
 */
async function checkPixels(canvas, a, file, expected) {
  const [wx, wy] = nums(a['data-window']);
  const step = Number(a['data-step']);
  const texW = Number(a['data-tex-width']);
  const texH = Number(a['data-tex-height']);
  const ox = Number(a['data-origin-x']);
  const oy = Number(a['data-origin-y']);
  const tpp = Number(a['data-texels-per-pixel']);
  const png = PNG.sync.read(await canvas.screenshot({ path: join(OUT, file) }));
  const cw = Number(a.width);
  const ch = Number(a.height);
  assert(png.width === cw && png.height === ch,
    `screenshot ${png.width}x${png.height} != canvas ${cw}x${ch} (device pixel ratio must be 1)`);
  let checked = 0;
  const mismatches = [];
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
        candidates.push(expected(wx + tx * step, wy + ty * step));
      }
      if (candidates.length === 0) continue; // outside the image: background
      checked += 1;
      seen.add(got.join(','));
      // `expected` may give alternatives (an array of RGB triples) for values on a boundary.
      const flat = candidates.flatMap((e) => (Array.isArray(e[0]) ? e : [e]));
      const ok = flat.some((e) => e.every((v, c) => Math.abs(v - got[c]) <= 2));
      if (!ok) mismatches.push(`(${px},${py}) got ${got} expected ${flat[0]}`);
    }
  }
  assert(checked >= 300, `only ${checked} sample points fell on the image`);
  assert(seen.size > 50, `the image is nearly uniform (${seen.size} distinct colours): not real pixels`);
  assert(mismatches.length === 0,
    `${mismatches.length}/${checked} pixels differ from the CPU: ${mismatches.slice(0, 5).join('; ')}`);
  return { checked, seen };
}

/** Sets a range input the way a drag does (value, then an `input` event); returns its value. */
function setSlider(page, selector, value) {
  return page.$eval(selector, (el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
    return Number(el.value);
  }, value);
}

/** Records the raster requests the page makes from now on; `stop()` ends and returns them. */
function watchRasterRequests(page) {
  const seen = [];
  const onRequest = (r) => { if (r.url().includes('/raster')) seen.push(r.url()); };
  page.on('request', onRequest);
  return { stop: () => { page.off('request', onRequest); return seen; } };
}

/**
 * The documented colour stops of the index colormaps (render/src/colormap.rs), and their
 * 256-entry lookup table: entry i is the colour at i / 255, linear between stops, rounded.
 */
const COLORMAP_STOPS = {
  'brown-green': [[0, [140, 81, 10]], [0.25, [216, 179, 101]], [0.5, [245, 245, 245]],
    [0.75, [120, 198, 121]], [1, [0, 104, 55]]],
  blues: [[0, [247, 251, 255]], [0.5, [107, 174, 214]], [1, [8, 48, 107]]],
};
function lutFromStops(stops) {
  const lut = [];
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let upper = stops.findIndex(([p]) => p >= t);
    if (upper < 0) upper = stops.length - 1;
    upper = Math.max(1, upper);
    const [p0, c0] = stops[upper - 1];
    const [p1, c1] = stops[upper];
    const f = p1 > p0 ? (t - p0) / (p1 - p0) : 0;
    // Rust's f64::round rounds half away from zero; values here are positive.
    lut.push([0, 1, 2].map((c) => Math.round(c0[c] + (c1[c] - c0[c]) * f)));
  }
  return lut;
}
/** LUT entries for (a - b) / (a + b) over [lo, hi] in f32 as the shader does, ±1 entry. */
function indexEntries(a, b, lo, hi) {
  const f = Math.fround;
  const sum = f(a + b);
  if (sum === 0) return null;
  const v = f(f(a - b) / sum);
  const t = Math.min(1, Math.max(0, f(f(v - lo) / f(hi - lo))));
  const i = Math.min(255, Math.floor(f(t * 256)));
  return [i, Math.max(0, i - 1), Math.min(255, i + 1)];
}

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
  const mins = nums(a['data-min']);
  const maxs = nums(a['data-max']);
  const gammas = nums(a['data-gamma']);

  const bands = await readBands(product.id, ['B04', 'B03', 'B02']);
  const { checked, seen } = await checkPixels(canvas, a, 't33uuu-true-colour.png',
    (gx, gy) => [0, 1, 2].map((c) => stretch(bands[c].value(gx, gy), mins[c], maxs[c], gammas[c])));
  console.log(`  ${checked} pixels equal the CPU's values (±2), ${seen.size} distinct colours`);
});

test('contrast sliders re-render on the GPU without a new fetch, Auto restores', async () => {
  const canvas = page.locator('canvas#render');
  const before = await attrs(canvas);
  assert(before['data-state'] === 'drawn' && before['data-bands'] === 'B04,B03,B02',
    'the true colour T33UUU view is drawn (previous test)');
  const watch = watchRasterRequests(page);
  const [min0] = nums(before['data-min']);
  const [max0] = nums(before['data-max']);
  const newMax = await setSlider(page, '#max-0', min0 + (max0 - min0) / 2);
  const newGamma = await setSlider(page, '#gamma-2', 2);
  await page.waitForFunction(
    ([mx, g]) => {
      const c = document.querySelector('canvas#render');
      return c.dataset.state === 'drawn' && Number(c.dataset.max.split(',')[0]) === mx &&
        Number(c.dataset.gamma.split(',')[2]) === g;
    },
    [newMax, newGamma],
    { timeout: 10_000 },
  );
  const a = await attrs(canvas);
  const mins = nums(a['data-min']);
  const maxs = nums(a['data-max']);
  const gammas = nums(a['data-gamma']);
  assert(maxs[0] < max0 && gammas[2] === 2, `sliders applied: max ${maxs}, gamma ${gammas}`);
  const shown = await page.textContent('#max-0-value');
  assert(Math.abs(Number(shown) - newMax) <= Math.max(1, newMax * 1e-3),
    `the read-out shows the slider value (${shown} vs ${newMax})`);
  const bands = await readBands(a['data-product'], ['B04', 'B03', 'B02']);
  const { checked } = await checkPixels(canvas, a, 't33uuu-slider.png',
    (gx, gy) => [0, 1, 2].map((c) => stretch(bands[c].value(gx, gy), mins[c], maxs[c], gammas[c])));
  console.log(`  max R ${max0} -> ${newMax}, gamma B 2: ${checked} pixels equal the CPU's values`);

  await page.click('#auto-stretch');
  await page.waitForFunction(
    (b) => {
      const c = document.querySelector('canvas#render');
      return c.dataset.min === b.min && c.dataset.max === b.max && c.dataset.gamma === b.gamma;
    },
    { min: before['data-min'], max: before['data-max'], gamma: before['data-gamma'] },
    { timeout: 10_000 },
  );
  await page.waitForTimeout(200);
  const requests = watch.stop();
  assert(requests.length === 0, `no raster request while restretching, got ${requests.join(' ')}`);
  console.log('  Auto restored the 2-98 % stretch; no /raster request was made');
});

test('NDVI preset: screenshot pixels equal NDVI from B08, B04 through the colormap', async () => {
  const canvas = page.locator('canvas#render');
  const productId = (await attrs(canvas))['data-product'];
  assert(productId && productId.includes('T33UUU'), 'T33UUU is shown (previous tests)');
  await page.selectOption('#preset', 'NDVI');
  await page.waitForFunction(
    () => {
      const c = document.querySelector('canvas#render');
      return c.dataset.state === 'drawn' && c.dataset.preset === 'NDVI';
    },
    null,
    { timeout: 60_000 },
  );
  const a = await attrs(canvas);
  assert(a['data-bands'] === 'B08,B04', `NDVI bands, got ${a['data-bands']}`);
  assert(a['data-colormap-name'] === 'brown-green', `colormap ${a['data-colormap-name']}`);
  const [lo, hi] = nums(a['data-colormap-range']);
  assert(lo === -1 && hi === 1, `colormap range ${lo},${hi}`);
  const lut = lutFromStops(COLORMAP_STOPS['brown-green']);
  const hook = a['data-colormap'].split(',');
  assert(hook.length === 256, `data-colormap has ${hook.length} entries`);
  hook.forEach((hex, i) => {
    const rgb = [0, 2, 4].map((k) => parseInt(hex.slice(k, k + 2), 16));
    assert(rgb.every((v, c) => v === lut[i][c]), `colormap entry ${i}: page ${rgb}, stops ${lut[i]}`);
  });
  const legend = await page.textContent('#legend');
  assert(['-1', '0', '1'].every((l) => legend.includes(l)), `legend labels: ${legend}`);
  const [nir, red] = await readBands(productId, ['B08', 'B04']);
  let valid = 0;
  const { checked, seen } = await checkPixels(canvas, a, 't33uuu-ndvi.png', (gx, gy) => {
    const entries = indexEntries(nir.value(gx, gy), red.value(gx, gy), lo, hi);
    if (!entries) return [0, 0, 0];
    valid += 1;
    return entries.map((i) => lut[i]);
  });
  assert(valid > 0.9 * checked, `most sampled pixels have a defined NDVI (${valid}/${checked})`);
  console.log(`  ${checked} pixels equal NDVI through the colormap, ${seen.size} distinct colours`);
});

test('hovering the canvas shows the grid pixel, raw bands and NDVI under the cursor', async () => {
  const canvas = page.locator('canvas#render');
  const a = await attrs(canvas);
  assert(a['data-preset'] === 'NDVI', 'the NDVI view is drawn (previous test)');
  const [wx, wy] = nums(a['data-window']);
  const step = Number(a['data-step']);
  const ox = Number(a['data-origin-x']);
  const oy = Number(a['data-origin-y']);
  const tpp = Number(a['data-texels-per-pixel']);
  const [nir, red] = await readBands(a['data-product'], ['B08', 'B04']);
  const box = await canvas.boundingBox();
  for (const [px, py] of [[200, 200], [517, 301], [40, 130]]) {
    // A little inside the pixel: MouseEvent offsets are whole pixels (rounded).
    await page.mouse.move(box.x + px + 0.2, box.y + py + 0.2);
    const gx = wx + Math.floor(ox + (px + 0.5) * tpp) * step;
    const gy = wy + Math.floor(oy + (py + 0.5) * tpp) * step;
    const want = `x ${gx}, y ${gy}`;
    await page.waitForFunction(
      (w) => document.querySelector('#pixel-readout').textContent.includes(w), want, { timeout: 5_000 });
    const text = await page.textContent('#pixel-readout');
    const b08 = nir.value(gx, gy);
    const b04 = red.value(gx, gy);
    assert(text.includes(`B08 ${b08}`) && text.includes(`B04 ${b04}`),
      `read-out at (${px},${py}) shows B08 ${b08}, B04 ${b04}: ${JSON.stringify(text)}`);
    const m = text.match(/NDVI (-?[0-9.]+)/);
    const ndvi = (b08 - b04) / (b08 + b04);
    assert(m && Math.abs(Number(m[1]) - ndvi) < 1e-3, `NDVI ${ndvi.toFixed(4)} in ${JSON.stringify(text)}`);
  }
  await page.mouse.move(box.x + 10, box.y + 5); // background above the image
  await page.waitForFunction(
    () => !/x \d+, y \d+/.test(document.querySelector('#pixel-readout').textContent), null, { timeout: 5_000 });
  console.log('  read-out matches the files at 3 places and clears over the background');
});

test('NDWI preset: pixels equal NDWI from B03, B08 through the blue colormap', async () => {
  const canvas = page.locator('canvas#render');
  const productId = (await attrs(canvas))['data-product'];
  await page.selectOption('#preset', 'NDWI');
  await page.waitForFunction(
    () => {
      const c = document.querySelector('canvas#render');
      return c.dataset.state === 'drawn' && c.dataset.preset === 'NDWI';
    },
    null,
    { timeout: 60_000 },
  );
  const a = await attrs(canvas);
  assert(a['data-bands'] === 'B03,B08' && a['data-colormap-name'] === 'blues',
    `NDWI bands and colormap, got ${a['data-bands']} ${a['data-colormap-name']}`);
  const [lo, hi] = nums(a['data-colormap-range']);
  const lut = lutFromStops(COLORMAP_STOPS.blues);
  const [green, nir] = await readBands(productId, ['B03', 'B08']);
  const { checked, seen } = await checkPixels(canvas, a, 't33uuu-ndwi.png', (gx, gy) => {
    const entries = indexEntries(green.value(gx, gy), nir.value(gx, gy), lo, hi);
    return entries ? entries.map((i) => lut[i]) : [0, 0, 0];
  });
  console.log(`  ${checked} pixels equal NDWI through the colormap, ${seen.size} distinct colours`);
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
