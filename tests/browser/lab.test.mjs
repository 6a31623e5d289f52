// The lab page in real headless Chromium: it starts a compute backend, says which one, and
// computes with it. WebGPU comes from SwiftShader (`--enable-unsafe-webgpu`) on machines
// without a GPU; with WebGPU disabled the page must fall back to the CPU backend and say so.
//
// Serves dist/ (built by `trunk build`) from a local static server on a free port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile, mkdir } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dist = join(root, 'dist');
const artefacts = join(root, 'target', 'browser-artefacts');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };
const chromiumArgs = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let server;
let url;

before(async () => {
  await mkdir(artefacts, { recursive: true });
  server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const file = join(dist, path === '/' ? 'index.html' : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${server.address().port}/`;
});

after(() => server.close());

async function openLab(extraArgs, screenshot) {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...chromiumArgs, ...extraArgs] });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForFunction(() => {
      const smoke = document.querySelector('#smoke');
      return smoke && !smoke.textContent.startsWith('Running');
    }, null, { timeout: 180_000 });
    const result = {
      backend: await page.textContent('#backend'),
      webgpu: await page.getAttribute('#backend', 'data-webgpu'),
      smoke: await page.textContent('#smoke'),
    };
    await page.screenshot({ path: join(artefacts, screenshot) });
    return result;
  } finally {
    await browser.close();
  }
}

test('the page reports a WebGPU backend and computes with it', { timeout: 240_000 }, async () => {
  const lab = await openLab(['--enable-unsafe-webgpu'], 'lab-webgpu.png');
  assert.equal(lab.webgpu, 'true', lab.backend);
  assert.match(lab.backend, /^WebGPU · /);
  assert.match(lab.smoke, /= 30 \(expected 30\)/);
});

test('without WebGPU the page falls back to the CPU backend and says so', { timeout: 240_000 }, async () => {
  const lab = await openLab(['--disable-webgpu'], 'lab-cpu.png');
  assert.equal(lab.webgpu, 'false', lab.backend);
  assert.match(lab.backend, /^CPU \(wasm\) · /);
  assert.match(lab.smoke, /= 30 \(expected 30\)/);
});
