// What the browser tests and the browser diagnostics share: serving dist/, launching Debian's
// Chromium (with WebGPU, or with the CPU backend and a fake microphone), opening the lab and
// waiting on its progress.
import { createServer } from 'node:http';
import { readFile, mkdtemp } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const dist = join(root, 'dist');
export const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, 'target');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };
const chromiumArgs = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

// What the CPU browser's fake microphone says: words of the built-in grammar in a sentence the
// corpus does not hold, spoken by one of its held-out test voices (`HELD_OUT_VOICES` in
// trainer-native/src/data/synth.rs: en-us, variant f1, 175 words a minute, pitch 62).
export const spoken = 'THE OLD FARMER CARRIED A RED BASKET ACROSS THE BRIDGE';

/** Word error rate of `hypothesis` against `reference`, in percent (Levenshtein over words). */
export function wer(reference, hypothesis) {
  const r = reference.split(/\s+/).filter(Boolean);
  const h = hypothesis.split(/\s+/).filter(Boolean);
  let row = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 1; i <= r.length; i++) {
    const next = [i];
    for (let j = 1; j <= h.length; j++) next.push(Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (r[i - 1] === h[j - 1] ? 0 : 1)));
    row = next;
  }
  return (100 * row[h.length]) / r.length;
}

/** Serves dist/ on a free local port; resolves to `{ server, origin }`. */
export async function serveDist() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const file = join(dist, path === '/' ? 'index.html' : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}/` };
}

/** Chromium with WebGPU (SwiftShader where there is no GPU). */
export const launchWebGpu = () =>
  chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...chromiumArgs, '--enable-unsafe-webgpu'] });

/**
 * Chromium without WebGPU (the page falls back to the CPU backend), whose microphone plays the
 * synthesised `spoken` sentence (48 kHz, 0.3 s of silence before it and 2 s after, so the 4 s
 * recording holds it once).
 */
export async function launchCpuWithMicrophone() {
  const audio = await mkdtemp(join(tmpdir(), 'prunelab-mic-'));
  execFileSync('espeak-ng', ['-v', 'en-us+f1', '-s', '175', '-p', '62', '-w', join(audio, 'raw.wav'), spoken.toLowerCase()]);
  execFileSync('sox', [join(audio, 'raw.wav'), '-r', '48000', join(audio, 'spoken.wav'), 'pad', '0.3', '2']);
  const microphone = ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${join(audio, 'spoken.wav')}`];
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...chromiumArgs, '--disable-webgpu', ...microphone] });
}

/** Opens the lab at `origin + hash` and waits until the corpus is loaded and the first snapshot drawn. */
export async function openLab(context, origin, hash = '') {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const started = Date.now();
  await page.goto(origin + hash);
  await page.waitForSelector('#backend', { timeout: 120_000 });
  const backendMs = Date.now() - started;
  await page.waitForSelector('#step-count', { timeout: 300_000 });
  // The first snapshot (step 0) fills the heatmaps.
  await page.waitForFunction(() => !document.querySelector('#frame-label')?.textContent.startsWith('no snapshot'), null, { timeout: 300_000 });
  return { page, errors, backendMs, readyMs: Date.now() - started };
}

/**
 * Presses Step by dispatching the click on the button itself. A mouse click at the button's
 * coordinates can be lost: a notice that appears after a step (storage refused, a kept copy)
 * moves the controls down between Playwright's hit-target check and its mouse events. Seen in
 * about 1 run in 4 of the reload test: the click after step 1 or 2 returned, yet no pointer
 * event reached the page (Playwright's interceptor held them), and the wait for the next step
 * timed out. Nothing here tests where the button is; the other buttons are clicked by mouse.
 */
export const clickStep = (page) => page.locator('#step').dispatchEvent('click');

export const step = async (page) => Number(await page.getAttribute('#step-count', 'data-step'));

/**
 * Waits until `atLeast` steps are done. The wait is on progress, not on a total: it fails only
 * when no step finishes for `stall` ms, so a machine slower than the one a test was written on
 * still passes (SwiftShader's steps take 13-50 s on two cores, depending on the machine).
 */
export async function waitForStep(page, atLeast, stall = 300_000) {
  for (;;) {
    const done = await step(page);
    if (done >= atLeast) return;
    await page.waitForFunction((n) => Number(document.querySelector('#step-count')?.dataset.step) > n, done, { timeout: stall });
  }
}

/** Pausing lets a step in flight finish; this waits for it, and for any other work. */
export const waitForIdle = (page) =>
  page.waitForFunction(() => document.querySelector('#step-count')?.dataset.stepping === 'false' && !document.querySelector('#busy')?.textContent, null, { timeout: 300_000 });
