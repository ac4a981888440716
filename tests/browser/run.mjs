// Browser end-to-end tests: Playwright drives Debian's Chromium (never a downloaded browser)
// against a running Albedo (ALBEDO_URL), as a person would. `cargo xtask test` starts the
// server the way `cargo xtask demo` does and runs this file. Pixels are checked against values
// computed on the CPU here, with geotiff.js, from the same files the server read; catalog
// searches are checked against the STAC item files in assets/stac, read here.
//
// Env: ALBEDO_URL (e.g. http://127.0.0.1:41234/), ALBEDO_ASSETS (the repo's assets/),
// ALBEDO_DIST (the built app, for its wasm size), ALBEDO_USER_TOKEN (a user token: the
// experiment tests open the app at URL#token=... as `cargo xtask demo` does).
// Prints `browser tests: N passed, M failed`.

import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';
import { fromFile } from 'geotiff';
import { readdirSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const BASE = process.env.ALBEDO_URL;
const ASSETS = process.env.ALBEDO_ASSETS;
const DIST = process.env.ALBEDO_DIST;
const USER_TOKEN = process.env.ALBEDO_USER_TOKEN;
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


/**
 * Every STAC item of assets/stac (Item, FeatureCollection, ndjson; collections skipped), read
 * here as the oracle of catalog searches: id, bbox [w, s, e, n], time range in ms
 * (start_datetime..end_datetime, else datetime), geometry.
 */
function stacItems() {
  const files = [];
  const walk = (dir) => {
    for (const f of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, f.name);
      if (f.isDirectory()) walk(p);
      else if (/\.(json|geojson|ndjson)$/.test(f.name)) files.push(p);
    }
  };
  walk(join(ASSETS, 'stac'));
  const items = new Map();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const docs = file.endsWith('.ndjson')
      ? text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
      : [JSON.parse(text)];
    for (const doc of docs) {
      const features = doc.type === 'FeatureCollection' ? doc.features : doc.type === 'Feature' ? [doc] : [];
      for (const f of features) {
        const b = f.bbox.length === 6 ? [f.bbox[0], f.bbox[1], f.bbox[3], f.bbox[4]] : f.bbox;
        const p = f.properties || {};
        const range = p.start_datetime && p.end_datetime
          ? [Date.parse(p.start_datetime), Date.parse(p.end_datetime)]
          : p.datetime ? [Date.parse(p.datetime), Date.parse(p.datetime)] : null;
        items.set(f.id, { id: f.id, bbox: b, range, geometry: f.geometry });
      }
    }
  }
  return [...items.values()];
}

/** Ids of the STAC items whose bbox meets `area` and whose time meets the days, inclusive. */
function expectedIds(items, [w, s, e, n], fromDay, toDay) {
  const lo = Date.parse(`${fromDay}T00:00:00Z`);
  const hi = Date.parse(`${toDay}T00:00:00Z`) + 86_400_000 - 0.001;
  assert(w <= e, 'the oracle handles areas that do not cross the antimeridian');
  return items
    .filter((it) => it.bbox[0] <= it.bbox[2]) // none of the bundled items crosses it
    .filter((it) => it.bbox[0] <= e && it.bbox[2] >= w && it.bbox[1] <= n && it.bbox[3] >= s)
    .filter((it) => it.range && it.range[0] <= hi && it.range[1] >= lo)
    .map((it) => it.id)
    .sort();
}

/** Even-odd point in the outer rings of a GeoJSON (Multi)Polygon. */
function inFootprint(geometry, [x, y]) {
  const polys = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
  let inside = false;
  for (const ring of polys.map((p) => p[0])) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i];
      const [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

/** A point well inside a footprint: the vertex mean, else a point of a grid over its bbox. */
function pointInside(item) {
  const ring = (item.geometry.type === 'Polygon' ? item.geometry.coordinates : item.geometry.coordinates[0])[0];
  const mean = [0, 1].map((k) => ring.reduce((a, p) => a + p[k], 0) / ring.length);
  if (inFootprint(item.geometry, mean)) return mean;
  const [w, s, e, n] = item.bbox;
  for (let i = 1; i < 10; i++) for (let j = 1; j < 10; j++) {
    const p = [w + ((e - w) * i) / 10, s + ((n - s) * j) / 10];
    if (inFootprint(item.geometry, p)) return p;
  }
  throw new Error(`no inside point for ${item.id}`);
}

/** Waits for the answer of a search started after `before` answers; returns the new count. */
async function waitForResults(page, before) {
  await page.waitForFunction(
    (b) => {
      const r = document.querySelector('#results');
      return r && Number(r.dataset.searches) > b && r.dataset.state !== 'loading';
    },
    before,
    { timeout: 30_000 },
  );
  return Number(await page.getAttribute('#results', 'data-searches'));
}

const searchesSoFar = async (page) => Number(await page.getAttribute('#results', 'data-searches'));

/** Submits the search form as a person does and waits for the answer. */
async function submitSearch(page) {
  const before = await searchesSoFar(page);
  await page.click('#search-submit');
  return waitForResults(page, before);
}

/** Ids shown on every page of the current results, following Next to the end. */
async function allResultIds(page) {
  const ids = [];
  for (;;) {
    ids.push(...(await page.$$eval('#results .product[data-product-id]', (els) =>
      els.map((e) => e.getAttribute('data-product-id')))));
    if (await page.isDisabled('#results-next')) return ids;
    const before = await searchesSoFar(page);
    await page.click('#results-next');
    await waitForResults(page, before);
  }
}

/** Page coordinates of a longitude/latitude on the world map, from its `data-view`. */
async function mapPoint(page, [lon, lat]) {
  const map = page.locator('#worldmap');
  const box = await map.boundingBox();
  const a = await attrs(map);
  const [w, s, e, n] = nums(a['data-view']);
  const [cw, ch] = nums(a['data-css-size']);
  const border = (box.width - cw) / 2; // the canvas' border; offsets start inside it
  return {
    x: box.x + border + ((lon - w) / (e - w)) * cw,
    y: box.y + border + ((n - lat) / (n - s)) * ch,
    inside: (lon - w) * (e - lon) > 0 && (lat - s) * (n - lat) > 0,
    degPerPx: (e - w) / cw,
  };
}

async function setArea(page, [w, s, e, n]) {
  await page.fill('#bbox-west', String(w));
  await page.fill('#bbox-south', String(s));
  await page.fill('#bbox-east', String(e));
  await page.fill('#bbox-north', String(n));
}

async function areaFields(page) {
  return Promise.all(['west', 'south', 'east', 'north'].map(async (k) =>
    Number(await page.inputValue(`#bbox-${k}`))));
}

function sameIds(got, want, what) {
  const g = [...got].sort();
  const missing = want.filter((id) => !g.includes(id));
  const extra = g.filter((id) => !want.includes(id));
  assert(new Set(g).size === g.length, `${what}: a product is listed twice`);
  assert(missing.length === 0 && extra.length === 0,
    `${what}: missing ${missing.join(', ') || 'none'}; unexpected ${extra.join(', ') || 'none'}`);
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

let page;

test('the catalog lists every bundled product by its real name, page by page', async () => {
  const started = Date.now();
  await page.goto(BASE);
  await page.waitForSelector('.product[data-product-id]', { timeout: 60_000 });
  console.log(`  page load to product list: ${Date.now() - started} ms`);
  await page.waitForFunction(() => document.querySelector('#results').dataset.state === 'done');
  const list = await api('/api/products?limit=1000');
  const local = list.products.filter((p) => p.pixels.kind === 'local');
  assert(local.length >= 5, `expected the bundled local products, API has ${local.length}`);
  const count = await page.textContent('#results-count');
  assert(count.includes(`of ${list.total}`), `the count shows all ${list.total} products: ${count}`);
  const firstPage = await page.$$eval('#results .product[data-product-id]', (els) =>
    els.map((e) => e.getAttribute('data-product-id')));
  // Every product, following Next to the last page, each once; titles from the files.
  const rows = new Map();
  for (;;) {
    for (const [id, text] of await page.$$eval('#results .product[data-product-id]', (els) =>
      els.map((e) => [e.getAttribute('data-product-id'), e.textContent]))) {
      assert(!rows.has(id), `${id} is listed on two pages`);
      rows.set(id, text);
    }
    if (await page.isDisabled('#results-next')) break;
    const before = await searchesSoFar(page);
    await page.click('#results-next');
    await waitForResults(page, before);
  }
  assert(rows.size === list.total, `paging shows ${rows.size} of ${list.total} products`);
  for (const p of local) {
    assert(rows.has(p.id), `local product ${p.id} is not listed on any page`);
    assert(rows.get(p.id).includes(p.title), `row of ${p.id} does not show its title "${p.title}"`);
  }
  // The names come from the files in assets/, not from the code.
  const folders = readdirSync(join(ASSETS, 's2'));
  assert(folders.some((f) => f.startsWith('T33UUU')), 'assets/s2 has the T33UUU product');
  assert(local.some((p) => p.id.includes('T33UUU')), 'T33UUU product is in the catalog');
  assert([...rows.values()].some((t) => t.includes('33UUU')), 'the pages show the T33UUU product');
  // Previous walks back to the first page.
  while (!(await page.isDisabled('#results-prev'))) {
    const before = await searchesSoFar(page);
    await page.click('#results-prev');
    await waitForResults(page, before);
  }
  const again = await page.$$eval('#results .product[data-product-id]', (els) =>
    els.map((e) => e.getAttribute('data-product-id')));
  assert(JSON.stringify(again) === JSON.stringify(firstPage), 'Previous returns to the first page');
  console.log(`  ${rows.size} products on ${Math.ceil(rows.size / firstPage.length)} pages`);
});

test('typing an area and a date range finds exactly the STAC items there and then', async () => {
  const items = stacItems();
  // West of -105.5: the full-tile 13TDE acquisitions, not the orbit 98 ones that cover only
  // the tile's eastern part (their bbox starts near -105.36).
  const area = [-106, 39.8, -105.5, 40.4];
  const [from, to] = ['2024-04-01', '2024-06-30'];
  const want = expectedIds(items, area, from, to);
  assert(want.length > 10, `the oracle finds a few pages of items (${want.length})`);
  await setArea(page, area);
  await page.fill('#search-from', from);
  await page.fill('#search-to', to);
  await page.selectOption('#search-limit', '10');
  await submitSearch(page);
  const count = await page.textContent('#results-count');
  assert(count.includes(`of ${want.length}`), `count "${count}", expected ${want.length} matches`);
  const got = await allResultIds(page);
  sameIds(got, want, 'typed area and dates');
  // The map draws the area typed and this page's footprints.
  const map = await attrs(page.locator('#worldmap'));
  assert(map['data-area'] === '-106,39.8,-105.5,40.4', `map area ${map['data-area']}`);
  const onPage = await page.$$eval('#results .product', (els) => els.length);
  assert(Number(map['data-footprints']) === onPage, `${map['data-footprints']} footprints, ${onPage} rows`);
  // Remote items show the "remote" placeholder, not a quick-look.
  const remote = await page.$$eval('#results .product .thumb.remote', (els) => els.map((e) => e.textContent));
  assert(remote.length === onPage && remote.every((t) => /remote/i.test(t)), 'remote placeholders');
  console.log(`  ${got.length} items over 2 pages, as computed from assets/stac: ${want.slice(0, 2).join(', ')}, ...`);
});

test('dragging a box on the world map sets the area; the search finds what is under it', async () => {
  const items = stacItems();
  await page.click('#map-world');
  await page.fill('#bbox-west', '');
  await page.fill('#bbox-south', '');
  await page.fill('#bbox-east', '');
  await page.fill('#bbox-north', '');
  // Zoom in over Colorado with the wheel, as a person would.
  for (let i = 0; i < 3; i++) {
    const c = await mapPoint(page, [-105.5, 40]);
    await page.mouse.move(c.x, c.y);
    await page.mouse.wheel(0, -120);
    await page.waitForTimeout(100);
  }
  const view = nums(await page.getAttribute('#worldmap', 'data-view'));
  assert(view[2] - view[0] < 360 / 3, `the wheel zoomed in: view ${view}`);
  const target = [-107.2, 39.0, -105.7, 41.0];
  const a = await mapPoint(page, [target[0], target[3]]);
  const b = await mapPoint(page, [target[2], target[1]]);
  assert(a.inside && b.inside, 'the box is on the map');
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 4 });
  await page.mouse.move(b.x, b.y, { steps: 4 });
  await page.mouse.up();
  const got = await areaFields(page);
  got.forEach((v, k) => assert(Math.abs(v - target[k]) <= 1.5 * a.degPerPx,
    `dragged area ${got} should be ${target} within a pixel (${a.degPerPx.toFixed(3)} deg)`));
  const [from, to] = ['2024-04-10', '2024-06-15'];
  await page.fill('#search-from', from);
  await page.fill('#search-to', to);
  await page.selectOption('#search-limit', '50');
  await submitSearch(page);
  const want = expectedIds(items, got, from, to);
  assert(want.length > 0, 'the oracle finds items under the box');
  sameIds(await allResultIds(page), want, 'dragged area');
  console.log(`  dragged ${got.join(', ')} (${a.degPerPx.toFixed(3)} deg/px): ${want.length} items`);
});

test('hovering a result highlights its footprint; hovering a footprint highlights the result', async () => {
  const items = new Map(stacItems().map((it) => [it.id, it]));
  await page.click('#map-zoom-results');
  const ids = await page.$$eval('#results .product[data-product-id]', (els) =>
    els.map((e) => e.getAttribute('data-product-id')));
  assert(ids.length > 1, 'results from the previous search');
  const map = page.locator('#worldmap');
  await map.scrollIntoViewIfNeeded();
  const [mapCssWidth] = nums(await map.getAttribute('data-css-size'));
  const id = ids[ids.length - 1];
  const p = await mapPoint(page, pointInside(items.get(id)));
  const box = await map.boundingBox();
  // What the map canvas shows at p (read from the canvas: a screenshot would scroll the
  // page, and the row under the mouse with it).
  const border = (box.width - mapCssWidth) / 2;
  const pixel = async (file) => {
    const [rgb, png] = await page.evaluate(([x, y]) => {
      const c = document.querySelector('#worldmap');
      const [cw] = c.dataset.cssSize.split(',').map(Number);
      const k = c.width / cw;
      const d = c.getContext('2d').getImageData(Math.round(x * k), Math.round(y * k), 1, 1).data;
      return [[d[0], d[1], d[2]], c.toDataURL('image/png')];
    }, [p.x - box.x - border, p.y - box.y - border]);
    writeFileSync(join(OUT, file), Buffer.from(png.split(',')[1], 'base64'));
    return rgb;
  };
  const orange = ([r, g, b]) => r > 170 && r - b > 90 && r - g > 40;
  await page.mouse.move(5, 5);
  const plain = await pixel('map-before-hover.png');
  assert(!orange(plain), `the footprint is not highlighted before hovering (${plain})`);
  await page.hover(`#results .product[data-product-id="${id}"]`);
  await page.waitForFunction((want) => document.querySelector('#worldmap').dataset.hovered === want, id);
  const lit = await pixel('map-hover.png');
  assert(orange(lit), `hovering the row turns its footprint orange: ${plain} -> ${lit}`);

  // The other way: the mouse over a footprint on the map marks its row.
  const other = items.get(ids[0]);
  await map.scrollIntoViewIfNeeded();
  const q = await mapPoint(page, pointInside(other));
  await page.mouse.move(q.x, q.y);
  await page.waitForFunction(() => document.querySelectorAll('#results .product.hovered').length === 1);
  const hoveredRow = await page.getAttribute('#results .product.hovered', 'data-product-id');
  assert(hoveredRow === (await page.getAttribute('#worldmap', 'data-hovered')), 'map and list agree');
  const under = await page.evaluate(([x, y]) => {
    const c = document.querySelector('#worldmap');
    const r = c.getBoundingClientRect();
    const [w, s, e, n] = c.dataset.view.split(',').map(Number);
    const [cw, ch] = c.dataset.cssSize.split(',').map(Number);
    const bx = (r.width - cw) / 2;
    return [w + ((x - r.left - bx) / cw) * (e - w), n - ((y - r.top - bx) / ch) * (n - s)];
  }, [q.x, q.y]);
  assert(inFootprint(items.get(hoveredRow).geometry, under),
    `the highlighted row ${hoveredRow} has a footprint under the mouse (${under})`);
  await page.mouse.move(5, 5);
  await page.waitForFunction(() => document.querySelectorAll('#results .product.hovered').length === 0);
  console.log(`  row ${id} lights its footprint (${lit}); the map at ${under.map((v) => v.toFixed(3))} lights ${hoveredRow}`);
});

test('a search the backend rejects shows its message; a bad area is caught in the form', async () => {
  await page.fill('#search-from', '2024-05-01');
  await page.fill('#search-to', '2024-04-01');
  await submitSearch(page);
  await page.waitForSelector('#search-error:not([hidden])');
  const message = await page.textContent('#search-error');
  assert(/start is after the end/.test(message) && /datetime/.test(message),
    `the backend's ErrorBody message is shown: ${message}`);
  await setArea(page, [-106, 41, -105, 40]);
  await page.click('#search-submit');
  await page.waitForFunction(() => /South \(41\) is north of North/.test(document.querySelector('#search-error').textContent));
  console.log(`  shown: ${message.trim()}`);
  await page.click('#search-reset');
  await page.waitForFunction(() => document.querySelector('#search-error').hidden);
});

test('the render canvas draws real Sentinel-2 pixels (T33UUU true colour)', async () => {
  const list = await api('/api/products');
  const product = list.products.find((p) => p.id.includes('T33UUU') && p.pixels.kind === 'local');
  assert(product, 'no local T33UUU product');
  // Find it as a person would: its collection, then click it in the results.
  await page.selectOption('#search-collection', product.collection);
  await submitSearch(page);
  const row = `#results .product[data-product-id="${product.id}"]`;
  await page.waitForFunction(
    (sel) => { const img = document.querySelector(`${sel} img.thumb`); return img && img.complete && img.naturalWidth > 0; },
    row,
    { timeout: 30_000 },
  );
  await page.click(row);
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

/** Pixels of a canvas (read in the page) whose colour is saturated: drawn data, not the
 * background, the grid or the grey axis labels. */
async function colouredPixels(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      const max = Math.max(d[i], d[i + 1], d[i + 2]);
      const min = Math.min(d[i], d[i + 1], d[i + 2]);
      if (d[i + 3] > 0 && max - min > 60) n += 1;
    }
    return n;
  }, selector);
}

const numAttr = async (page, sel, name) => Number(await page.getAttribute(sel, name));

test('the user token from the address bar is kept and removed from the URL', async () => {
  assert(USER_TOKEN, 'set ALBEDO_USER_TOKEN to a user token (cargo xtask test does)');
  await page.goto(`${BASE}#token=${USER_TOKEN}`);
  await page.waitForSelector('#token-status[data-set="true"]', { timeout: 30_000 });
  const url = page.url();
  assert(!url.includes(USER_TOKEN) && !url.includes('token='), `the token left the address bar: ${url}`);
  const stored = await page.evaluate(() => localStorage.getItem('albedo.token'));
  assert(stored === USER_TOKEN, 'the token is in localStorage["albedo.token"]');
  // The catalog still opens first, as before.
  await page.waitForSelector('.product[data-product-id]', { timeout: 60_000 });
  const status = await page.textContent('#token-status');
  assert(status.includes(USER_TOKEN.slice(-4)) && !status.includes(USER_TOKEN),
    `the header shows that a token is set, not the token: ${status}`);
  console.log(`  header: ${status.trim()}`);
});

test('the workers page lists the connected workers with their slots, refreshed', async () => {
  await page.click('#nav-workers');
  await page.waitForFunction(() => location.hash === '#/workers');
  await page.waitForSelector('#workers-table tr[data-worker-id]', { timeout: 20_000 });
  const workers = await api('/api/workers');
  assert(workers.length >= 1, 'the stack runs a worker');
  const rows = await page.$$eval('#workers-table tr[data-worker-id]', (els) =>
    els.map((e) => ({ id: e.dataset.workerId, slots: Number(e.dataset.slots), text: e.textContent })));
  sameIds(rows.map((r) => r.id), workers.map((w) => w.worker_id), 'workers shown');
  for (const w of workers) {
    const row = rows.find((r) => r.id === w.worker_id);
    assert(row.slots === w.slots, `${w.name}: ${row.slots} slots shown, ${w.slots} announced`);
    assert(row.text.includes(w.name), `${w.name} is named in its row`);
    for (const d of w.devices) assert(row.text.includes(d.kind), `${w.name}: device ${d.kind} shown`);
    assert(/s ago|min ago/.test(row.text), `${w.name}: last heartbeat shown: ${row.text}`);
  }
  const before = await numAttr(page, '#workers', 'data-refreshes');
  await page.waitForFunction((b) => Number(document.querySelector('#workers').dataset.refreshes) > b,
    before, { timeout: 6_000 });
  assert(await page.getAttribute('#nav-workers', 'aria-current') === 'page', 'the nav marks the page');
  assert(await page.isHidden('.catalog-page'), 'the catalog is hidden on the workers page');
  console.log(`  ${rows.length} worker(s), ${workers.reduce((a, w) => a + w.slots, 0)} slots; refreshed`);
});

test('a bad spec shows the server\'s message beside the field it names', async () => {
  await page.click('#nav-experiments');
  await page.waitForSelector('#experiment-form');
  const before = (await api('/api/experiments')).length;
  const lrHigh = Number(await page.inputValue('#param-0-high'));
  assert(await page.inputValue('#param-0-name') === 'lr', 'the first row is lr');
  await page.fill('#param-0-low', String(lrHigh + 1));
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/experiments') && r.request().method() === 'POST');
  await page.click('#exp-submit');
  const response = await answer;
  assert(response.status() === 400, `the server refuses it: HTTP ${response.status()}`);
  const body = await response.json();
  assert(body.field === 'params.lr.low', `the server names the field: ${body.field}`);
  await page.waitForSelector('#param-0-low-error', { timeout: 5_000 });
  const beside = (await page.textContent('#param-0-low-error')).trim();
  // The server's message, less the field's name (the input it sits beside says it).
  assert(beside.length > 0 && body.message.endsWith(beside) && beside.includes(String(lrHigh + 1)),
    `beside the input: ${beside} (server: ${body.message})`);
  const sameField = await page.$eval('#param-0-low-error', (e) => e.closest('label').querySelector('input').id);
  assert(sameField === 'param-0-low', `the message sits with the Low input (${sameField})`);
  assert(/#\/experiments$/.test(page.url()), 'the form stays open');
  assert((await api('/api/experiments')).length === before, 'nothing was created');
  console.log(`  beside #param-0-low: ${beside}`);

  // A form sent without a token: the 401 tells how to get one.
  await page.click('#exp-reset');
  await page.click('#token-clear');
  await page.click('#exp-submit');
  await page.waitForFunction(() => /albedo token create --scope user/.test(document.querySelector('#exp-form-error').textContent),
    null, { timeout: 5_000 });
  assert((await api('/api/experiments')).length === before, 'nothing was created without a token');
  await page.fill('#token-input', USER_TOKEN);
  await page.click('#token-save');
  await page.waitForSelector('#token-status[data-set="true"]');
  console.log('  without a token: the form says to run `albedo token create --scope user`');
});

test('an experiment launched from the form streams its curves live to the end', async () => {
  const TRIALS = 8;
  const STEPS = 10;
  const STEP_MS = 40;
  await page.click('#nav-experiments');
  await page.waitForSelector('#experiment-form');
  await page.click('#exp-reset');
  const name = `browser test ${Date.now()}`;
  await page.fill('#exp-name', name);
  await page.fill('#trial-steps', String(STEPS));
  await page.fill('#trial-step-ms', String(STEP_MS));
  await page.fill('#exp-max-trials', String(TRIALS));
  await page.click('#exp-submit');
  await page.waitForFunction(() => /^#\/experiments\/e\d+$/.test(location.hash), null, { timeout: 10_000 });
  const id = (await page.evaluate(() => location.hash)).split('/').pop();
  await page.waitForSelector(`#live[data-experiment-id="${id}"]`);
  const summary = await api(`/api/experiments/${id}`);
  assert(summary.name === name && summary.spec.max_trials === TRIALS &&
    summary.spec.trial.steps === STEPS && summary.spec.trial.step_ms === STEP_MS,
    `the spec is what the form said: ${JSON.stringify(summary.spec)}`);

  // Curves appear and grow while it runs.
  const seen = [];
  await page.waitForFunction(() => Number(document.querySelector('#curves').dataset.points) > 0, null, { timeout: 20_000 });
  seen.push(await numAttr(page, '#curves', 'data-points'));
  const pixelsEarly = await colouredPixels(page, '#curves');
  await page.waitForFunction((n) => Number(document.querySelector('#curves').dataset.points) > n,
    seen[0], { timeout: 20_000 });
  seen.push(await numAttr(page, '#curves', 'data-points'));
  assert(pixelsEarly > 0, 'drawn curves colour the canvas');
  await page.waitForSelector('#live[data-state="finished"]', { timeout: 60_000 });
  await page.waitForFunction(() => document.querySelector('#live').dataset.connection === 'ended', null, { timeout: 5_000 });

  // At the end the page shows exactly what the server stored.
  const series = await api(`/api/experiments/${id}/metrics`);
  const trials = await api(`/api/experiments/${id}/trials`);
  const done = await api(`/api/experiments/${id}`);
  const points = series.reduce((a, s) => a + s.points.filter((p) => 'accuracy' in p.values).length, 0);
  await page.waitForFunction((n) => Number(document.querySelector('#curves').dataset.points) === n, points, { timeout: 5_000 });
  seen.push(points);
  assert(trials.length === TRIALS, `${TRIALS} trials ran, the API lists ${trials.length}`);
  for (const t of trials) {
    assert(['finished', 'stopped'].includes(t.state), `trial ${t.id} ended well: ${t.state} ${t.reason || ''}`);
    if (t.state === 'finished') assert(t.steps === STEPS, `finished trial ${t.id} ran ${t.steps} of ${STEPS} steps`);
  }
  assert(points <= TRIALS * STEPS, `${points} points for ${TRIALS} trials of ${STEPS} steps`);
  const pixelsEnd = await colouredPixels(page, '#curves');
  assert(pixelsEnd >= pixelsEarly, `the curves grew on the canvas (${pixelsEarly} -> ${pixelsEnd} coloured pixels)`);
  await page.locator('#curves').screenshot({ path: join(OUT, 'experiment-curves.png') });

  // Leaderboard: every trial, best first, the best one the API's.
  await page.waitForFunction((n) => document.querySelectorAll('#leaderboard tr[data-trial]').length === n,
    Math.min(TRIALS, 15), { timeout: 5_000 });
  const board = await page.$$eval('#leaderboard tr[data-trial]', (els) =>
    els.map((e) => ({ trial: Number(e.dataset.trial), value: Number(e.children[2].textContent) })));
  for (let i = 1; i < board.length; i++) {
    assert(board[i - 1].value >= board[i].value, `leaderboard sorted best first: ${JSON.stringify(board)}`);
  }
  assert(done.best && board[0].trial === done.best.trial && Math.abs(board[0].value - done.best.value) < 1e-4,
    `the top row is the API's best: ${JSON.stringify(board[0])} vs ${JSON.stringify(done.best)}`);
  const counts = await page.textContent('#trial-counts');
  assert(counts.startsWith(`${TRIALS} of ${TRIALS} trials done`), `counts: ${counts}`);

  // The timeline has a bar per lease on at most as many lanes as there are slots.
  const workers = await api('/api/workers');
  const slots = workers.reduce((a, w) => a + w.slots, 0);
  const bars = await numAttr(page, '#timeline', 'data-bars');
  const lanes = await numAttr(page, '#timeline', 'data-lanes');
  const attempts = trials.reduce((a, t) => a + t.attempt, 0);
  assert(bars === attempts && bars >= TRIALS, `${bars} timeline bars for ${attempts} attempts of ${TRIALS} trials`);
  assert(lanes >= 1 && lanes <= slots, `${lanes} lanes for ${slots} slots`);
  assert(await colouredPixels(page, '#timeline') > 0, 'the timeline draws its bars');
  const lines = await numAttr(page, '#parallel', 'data-lines');
  assert(lines === trials.filter((t) => t.value !== undefined).length, `${lines} lines in the parallel coordinates`);
  assert(await colouredPixels(page, '#parallel') > 0, 'the parallel coordinates are drawn');

  // Opened again once ended, the view is drawn from the snapshot alone: same curves, same
  // leaderboard, one timeline bar per trial's last attempt.
  await page.reload();
  await page.waitForSelector(`#live[data-experiment-id="${id}"][data-connection="ended"]`, { timeout: 20_000 });
  await page.waitForFunction((n) => Number(document.querySelector('#curves').dataset.points) === n, points, { timeout: 10_000 });
  await page.waitForFunction((n) => document.querySelectorAll('#leaderboard tr[data-trial]').length === n,
    Math.min(TRIALS, 15), { timeout: 5_000 });
  const again = await page.$eval('#leaderboard tr[data-trial]', (e) => Number(e.dataset.trial));
  assert(again === done.best.trial, `the reloaded leaderboard leads with trial ${done.best.trial}, got ${again}`);
  const started = trials.filter((t) => t.started_ms !== undefined).length;
  assert(await numAttr(page, '#timeline', 'data-bars') === started, `a bar per started trial (${started})`);
  assert(await numAttr(page, '#timeline', 'data-lanes') <= slots, 'no more lanes than slots');

  // The list shows it finished.
  await page.click('.live-head a.back');
  await page.waitForSelector(`#experiment-list tr[data-experiment-id="${id}"][data-state="finished"]`, { timeout: 10_000 });
  console.log(`  ${id}: points drawn ${seen.join(' -> ')}; ${bars} bars on ${lanes} lanes; ` +
    `best trial ${done.best.trial} = ${done.best.value.toFixed(4)}; ` +
    `${trials.filter((t) => t.state === 'stopped').length} stopped early`);
});

test('an ablation study from the form shows each ticked component\'s delta', async () => {
  await page.click('#nav-experiments');
  await page.waitForSelector('#experiment-form');
  await page.click('#exp-reset');
  await page.fill('#exp-name', `ablation ${Date.now()}`);
  await page.fill('#trial-steps', '5');
  await page.fill('#trial-step-ms', '20');
  await page.selectOption('#stopping-type', 'none');
  await page.check('#study-ablation');
  await page.waitForSelector('#component-0-name');
  // Leave the second component in every trial: untick it.
  await page.uncheck('#component-1-use');
  const ticked = await page.$$eval('.component-row', (rows) => rows
    .filter((r) => r.querySelector('input[type=checkbox]').checked)
    .map((r) => r.querySelector('input[id$="-name"]').value));
  assert(ticked.length >= 1, 'some components are ticked');
  await page.fill('#exp-max-trials', String(ticked.length + 1));
  await page.click('#exp-submit');
  await page.waitForFunction(() => /^#\/experiments\/e\d+$/.test(location.hash), null, { timeout: 10_000 });
  const id = (await page.evaluate(() => location.hash)).split('/').pop();
  const spec = (await api(`/api/experiments/${id}`)).spec;
  assert(JSON.stringify(spec.ablation.components.map((c) => c.name)) === JSON.stringify(ticked),
    `the study leaves out exactly the ticked components: ${JSON.stringify(spec.ablation.components)}`);
  await page.waitForSelector('#live[data-state="finished"]', { timeout: 60_000 });
  const report = await api(`/api/experiments/${id}/ablation`);
  const withDelta = report.components.filter((c) => c.importance !== null && c.importance !== undefined).length;
  assert(withDelta === ticked.length, `every component has a delta: ${JSON.stringify(report)}`);
  await page.waitForFunction((n) => Number(document.querySelector('#ablation-chart')?.dataset.bars) === n,
    withDelta, { timeout: 10_000 });
  assert(await colouredPixels(page, '#ablation-chart') > 0, 'the bars are drawn');
  await page.locator('#ablation-chart').screenshot({ path: join(OUT, 'ablation.png') });
  console.log(`  ${id}: baseline ${report.baseline?.toFixed(4)}; ` +
    report.components.map((c) => `${c.component} ${c.delta >= 0 ? '+' : ''}${c.delta.toFixed(4)}`).join(', '));
});

test('Cancel stops a running experiment and its trials', async () => {
  await page.click('#nav-experiments');
  await page.waitForSelector('#experiment-form');
  await page.click('#exp-reset');
  await page.fill('#exp-name', `cancel me ${Date.now()}`);
  await page.fill('#trial-steps', '400');
  await page.fill('#trial-step-ms', '50');
  await page.fill('#exp-max-trials', '6');
  await page.click('#exp-submit');
  await page.waitForFunction(() => /^#\/experiments\/e\d+$/.test(location.hash), null, { timeout: 10_000 });
  const id = (await page.evaluate(() => location.hash)).split('/').pop();
  await page.waitForFunction(() => Number(document.querySelector('#curves').dataset.points) > 0, null, { timeout: 20_000 });
  await page.click('#cancel-experiment');
  await page.waitForSelector('#live[data-state="cancelled"]', { timeout: 20_000 });
  const trials = await api(`/api/experiments/${id}/trials`);
  const open = trials.filter((t) => ['running', 'queued', 'paused'].includes(t.state));
  assert(open.length === 0, `no trial runs on after a cancel: ${JSON.stringify(open.map((t) => [t.id, t.state]))}`);
  assert(await page.isDisabled('#cancel-experiment'), 'Cancel is disabled once cancelled');
  const stopped = trials.filter((t) => t.state === 'stopped').length;
  assert(stopped >= 1, 'the running trials were stopped');
  console.log(`  ${id}: cancelled with ${stopped} trial(s) stopped, ${trials.length} created`);
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
