// The lab in real headless Chromium. WebGPU comes from SwiftShader (`--enable-unsafe-webgpu`)
// on machines without a GPU, so these tests run the real WebGPU path; with WebGPU disabled the
// page must fall back to the CPU backend, say so, and still train.
//
// Serves dist/ (built by `trunk build`) from a local static server on a free port. Screenshots
// and the measured figures (figures.json) go to target/browser-artefacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, mkdir, writeFile, mkdtemp } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, dist, targetDir, spoken, wer, serveDist, launchWebGpu, launchCpuWithMicrophone, openLab as openLabAt, clickStep, step, waitForStep, waitForIdle } from './lab_page.mjs';

const artefacts = join(targetDir, 'browser-artefacts');
const figures = {};

let server;
let origin;
let browser;
let cpuBrowser;

before(async () => {
  await mkdir(artefacts, { recursive: true });
  ({ server, origin } = await serveDist());
  browser = await launchWebGpu();
  // Tests that are about the page rather than the GPU run on the CPU backend: SwiftShader's
  // WebGPU takes tens of seconds per training step on two cores. Its microphone plays `spoken`.
  cpuBrowser = await launchCpuWithMicrophone();
});

after(async () => {
  await browser?.close();
  await cpuBrowser?.close();
  server.close();
  await writeFile(join(artefacts, 'figures.json'), JSON.stringify(figures, null, 2));
});

const openLab = (context, hash = '') => openLabAt(context, origin, hash);
const shot = (page, selector) => page.locator(selector).screenshot();
const setSlider = (page, selector, value) =>
  page.$eval(selector, (el, v) => {
    el.value = v;
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  }, value);
const paramsText = (page) => page.textContent('#params');

// wasm-ld wraps every export of a "command" module (a bin crate) in a call to the static
// constructors unless the module calls them itself; with cubecl's `inventory` registrations that
// made each call from JavaScript into wasm re-run hundreds of them, and training on a real GPU
// 29× slower. `main` calls them once (app/src/main.rs); this keeps it so.
test('the wasm module runs its static constructors once, not on every call into it', async () => {
  const wasm = (await readdir(dist)).find((name) => name.endsWith('.wasm'));
  const bytes = await readFile(join(dist, wasm));
  assert.ok(bytes.includes('__wasm_call_ctors'), 'the module has no function names, so this check would prove nothing');
  assert.ok(!bytes.includes('.command_export'), 'exports are wrapped in __wasm_call_ctors: see app/src/main.rs');
});

test('on WebGPU: training moves the curves and heatmaps, the threshold prunes, transport works', { timeout: 1_800_000 }, async () => {
  const context = await browser.newContext();
  await context.addInitScript({ path: join(root, 'tests/browser/webgpu_counter.js') });
  // Keeps the page's WebGPU devices within reach, so the test can lose them.
  await context.addInitScript(() => {
    const requestDevice = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      const device = await requestDevice.apply(this, args);
      (window.__testGpuDevices ??= []).push(device);
      return device;
    };
  });
  // Cuts are scored and timed on 4 dev utterances, not 48 and 8: each scoring and each timed
  // pass is a forward pass on SwiftShader. The batch stays the default 16 s: SwiftShader's time
  // goes to dispatches, not arithmetic, so one-utterance batches (`#batch=1`, measured
  // 2026-12-05) made a step only about a third quicker, and scoring the 4 utterances then took
  // 4 batches (2,348 dispatches) instead of one (820; both counts then also held the previous
  // cut's work, see the 0.5 cut below: one cut alone is 162).
  // From scratch, so that a few steps move the gates below the 0.97 threshold the test cuts at
  // (from the trained start every unit was still above it after six steps, 2026-11-30); the
  // trained start is tested on the CPU backend. Snapshots every 2 steps, not 5: the heatmaps
  // change at a snapshot, and three SwiftShader steps fewer are 100-150 s.
  const { page, errors, backendMs, readyMs } = await openLab(context, '#dev=4&start=scratch&snapshot=2&pairs=1');
  // Seconds each phase took, so the stage table's WebGPU row can be explained (figures.json).
  const phases = (figures.webgpu_phase_seconds = {});
  let phaseStart = Date.now();
  const phase = (name) => { phases[name] = (Date.now() - phaseStart) / 1000; phaseStart = Date.now(); };
  figures.webgpu_backend_ms = backendMs;
  figures.webgpu_ready_ms = readyMs;
  assert.equal(await page.getAttribute('#backend', 'data-webgpu'), 'true', await page.textContent('#backend'));
  assert.match(await page.textContent('#backend'), /^WebGPU · /);

  // The unpruned model is scored at step 0; wait for it so the plot has its first points.
  await page.waitForFunction(() => !document.querySelector('#params')?.textContent.startsWith('not scored'), null, { timeout: 300_000 });
  phase('start scored');
  // This browser has no microphone: speaking says so, and nothing else changes. (Clicked once
  // the page is idle: timing a cut on SwiftShader holds its thread for a while.)
  await waitForIdle(page);
  await page.click('#record');
  await page.waitForFunction(() => /cannot record: (no microphone was found|the microphone was not allowed)/.test(document.querySelector('#notices')?.textContent ?? ''), null, { timeout: 300_000 });
  assert.equal(await page.$('#heard'), null);
  const lossBefore = await shot(page, '#loss-curve');
  const heatBefore = await shot(page, '#heatmap-ffn1-hidden');
  phase('no microphone');

  // Train to the second snapshot (step 2), then pause, counting what each step asks of WebGPU.
  await page.evaluate(() => __webgpuCounter.watchSteps(false)); // attribution costs seconds a step here: see measure_rate.py --attribute
  const t0 = Date.now();
  await page.click('#play');
  await waitForStep(page, 2);
  const trained = await step(page);
  figures.webgpu_steps = trained;
  figures.webgpu_seconds = (Date.now() - t0) / 1000;
  phase('2 training steps');
  figures.webgpu_rate_label = await page.textContent('#rate');
  figures.webgpu_per_step = await page.evaluate(() => __webgpuCounter.perStep());
  // 3,861 dispatches a step with burn's per-tensor optimiser, 2,763–2,796 with the flat one
  // (issue 15), 1,757 with the fused LayerNorm, Swish, GLU and BatchNorm, 1,325 with the packed
  // optimiser and the fused attention softmax, 1,193 with the per-head products, 1,124 with the
  // fused module outputs and hashed dropout, 919 with the hidden layers' dropout hashed, the gate
  // samplers fused and the penalty packed (951 from scratch, as here, in CI), 840 with the
  // convolution module channels last, 813 with the attention's projections and the module
  // outputs' one-kernel backward (825 from scratch here), 645 with the gates drawn in the layers
  // and one product per layer, ~536 with the query, key and value as one projection and the
  // residuals' gradients added in place, ~422 with each layer's two backward products as one
  // dispatch and the modules' outputs and the hidden layers' products fused (issue 32;
  // `#ops=reference` still makes ~2,800; a step's window moves by ±25 with the lazily flushed
  // update): a step that needs more than 480 has lost a fused operation or brought a
  // per-tensor loop back (docs/results.md).
  assert.ok(figures.webgpu_per_step.dispatches <= 480, `a training step made ${figures.webgpu_per_step.dispatches} compute dispatches`);
  await page.click('#play');
  await waitForIdle(page);
  await page.screenshot({ path: join(artefacts, 'lab-webgpu-trained.png'), fullPage: true });
  assert.ok(!(await shot(page, '#loss-curve')).equals(lossBefore), 'the loss curve did not change');
  assert.ok(!(await shot(page, '#heatmap-ffn1-hidden')).equals(heatBefore), 'the FFN heatmap did not change');
  phase('paused, idle');

  // Paused: no more steps. Step: exactly one more.
  const paused = await step(page);
  await page.waitForTimeout(3000);
  assert.equal(await step(page), paused, 'training went on while paused');
  await clickStep(page);
  await waitForStep(page, paused + 1, 300_000);
  await waitForIdle(page);
  assert.equal(await step(page), paused + 1, 'Step did more than one step');
  phase('one Step, idle');

  // A higher threshold removes units: fewer parameters, and the point on the plot moves.
  // Waits for this step's cut at 0.5, timed: the slider may rest at 0.5 already, and the cut
  // scored below must not share its count with this one's scoring and timing.
  await setSlider(page, '#threshold', '0.5');
  await page.waitForFunction((at) => {
    const params = document.querySelector('#params')?.dataset ?? {};
    return params.knob === '0.50' && params.step === String(at) && document.querySelector('#latency')?.dataset.prunedMs && !document.querySelector('#busy')?.textContent;
  }, await step(page), { timeout: 600_000 });
  const before = await paramsText(page);
  phase('0.5 cut scored and timed');
  const plotBefore = await shot(page, '#tradeoff-plot');
  // Wait for the cut itself (its parameter count), not any change of the line: re-scoring the
  // uncut reference changes the line first.
  const cutBefore = await page.getAttribute('#params', 'data-params');
  // What scoring one cut asks of WebGPU: reading the gates, then one forward pass over the 4 dev
  // utterances (one batch), counted until the cut's parameter count is shown (its timing after).
  await page.evaluate(() => __webgpuCounter.markUntil('#params', 'data-params'));
  await setSlider(page, '#threshold', '0.97');
  await page.waitForFunction((old) => document.querySelector('#params')?.dataset.params !== old && !document.querySelector('#busy')?.textContent, cutBefore, { timeout: 600_000 });
  figures.webgpu_per_cut_scoring = await page.evaluate(() => __webgpuCounter.sinceMark());
  phase('0.97 cut scored');
  const after = await paramsText(page);
  const count = (text) => Number(text.match(/^(\d+) parameters/)[1]);
  assert.ok(count(after) < count(before), `parameters did not fall: ${before} → ${after}`);
  assert.ok(!(await shot(page, '#tradeoff-plot')).equals(plotBefore), 'the point on the trade-off plot did not move');
  assert.match(page.url(), /threshold=0\.97/);
  await page.screenshot({ path: join(artefacts, 'lab-webgpu-pruned.png'), fullPage: true });

  // Listen: transcripts of the selected utterance are shown with their reference.
  assert.ok((await page.textContent('#reference')).trim().length > 0);

  // Losing the GPU (destroyed from here, as a driver reset would): the page stops, says so,
  // keeps the run's trace for saving, and carries the run on with the CPU backend from the
  // copy it keeps in memory (refreshed after a step when 15 s have passed, so here after every
  // SwiftShader step).
  await page.waitForSelector('#kept-copy [data-step]', { timeout: 300_000 });
  await waitForIdle(page);
  figures.webgpu_copy_ms = Number(await page.getAttribute('#kept-copy [data-step]', 'data-ms'));
  await page.evaluate(() => window.__testGpuDevices.forEach((device) => device.destroy()));
  await page.waitForSelector('#gpu-lost', { timeout: 60_000 });
  phase('idle, GPU lost');
  // Which step the copy is of is read from the notice, after the loss: a copy still being made
  // when the page went idle can land after any earlier look (session 34: step 2 read from the
  // status line, then the saved trace was of step 3).
  const lostNotice = await page.textContent('#gpu-lost');
  const noticed = lostNotice.match(/The GPU was lost.*a copy of the run from step (\d+) is in memory/);
  assert.ok(noticed, `the notice does not name the copy: ${lostNotice}`);
  const kept = Number(noticed[1]);
  const reached = await step(page);
  assert.ok(kept >= 1 && kept <= reached, `the copy is of step ${kept}, the run at step ${reached}`);
  // The trace is the run's own, of every step it took (a step faster than 15 s after the last
  // copy is in the trace but not yet in a copy).
  const [lostTrace] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('#gpu-lost-save')]);
  assert.match(lostTrace.suggestedFilename(), new RegExp(`-step${reached}\\.pltrace$`));
  assert.match(await page.textContent('#continue-on-cpu'), new RegExp(`from step ${kept}`));
  await page.click('#continue-on-cpu');
  await page.waitForFunction(() => document.querySelector('#backend')?.dataset.webgpu === 'false', null, { timeout: 60_000 });
  await waitForIdle(page);
  assert.equal(await step(page), kept, 'the run did not carry on from its copy');
  assert.match(await page.textContent('#last-loss'), /loss \d/, 'the carried-on run lost its loss curve');
  assert.equal(await page.$('#kept-copy [data-step]'), null, 'the carried-on run has no copy before its next step');
  await clickStep(page);
  await waitForStep(page, kept + 1);
  assert.match(await page.textContent('#backend'), /continued after the GPU was lost/);
  phase('saved, continued on the CPU, one Step');

  // Reset: back to step 0 (on the CPU backend the run carried on with: resetting on WebGPU
  // would re-score and re-time the start there, a few SwiftShader minutes that test nothing more).
  await page.click('#reset');
  await page.waitForFunction(() => document.querySelector('#step-count')?.dataset.step === '0', null, { timeout: 300_000 });
  phase('reset');
  assert.deepEqual(errors, []);
  await context.close();
});

// Issue 32: the page still runs burn's composed operations when asked (`#ops=reference`), the
// path the fused kernels are checked against natively (engine/tests/fused_ops.rs). A step there
// must train, and ask WebGPU for far more dispatches than the fused step's ≤ 480 (2,718 in
// session 34), which shows the setting reaches the engine. Two steps from scratch, as above.
test('on WebGPU, #ops=reference trains on burn\'s composed operations', { timeout: 900_000 }, async () => {
  const context = await browser.newContext();
  await context.addInitScript({ path: join(root, 'tests/browser/webgpu_counter.js') });
  const started = Date.now();
  const { page, errors } = await openLab(context, '#dev=4&start=scratch&snapshot=2&pairs=1&ops=reference');
  assert.equal(await page.getAttribute('#backend', 'data-webgpu'), 'true', await page.textContent('#backend'));
  // Scoring the start is one forward pass over 4 utterances with no progress to follow; its
  // time is kept so the margin to the 300 s limit shows (figures.json).
  await page.waitForFunction(() => !document.querySelector('#params')?.textContent.startsWith('not scored'), null, { timeout: 300_000 });
  figures.webgpu_reference_scored_s = (Date.now() - started) / 1000;
  await waitForIdle(page);
  await page.evaluate(() => __webgpuCounter.watchSteps(false));
  await page.click('#play');
  await waitForStep(page, 2);
  await page.click('#play');
  await waitForIdle(page);
  const perStep = (figures.webgpu_reference_per_step = await page.evaluate(() => __webgpuCounter.perStep()));
  figures.webgpu_reference_seconds = (Date.now() - started) / 1000;
  assert.ok(perStep.steps >= 1, `no whole step was counted: ${JSON.stringify(perStep)}`);
  assert.ok(perStep.dispatches > 2_000, `a reference step made ${perStep.dispatches} dispatches: is the fused path running?`);
  assert.match(await page.textContent('#last-loss'), /loss \d/);
  assert.deepEqual(errors, []);
  await context.close();
});

// The tests below train and score on the CPU backend with small shapes (2 s batches, 4 or 8 dev
// utterances) where what they check does not depend on the size; the page's defaults are
// tested as they are in 'without WebGPU…'.
test('a copied link restores the same settings', { timeout: 600_000 }, async () => {
  const context = await cpuBrowser.newContext();
  // The first visit downloads the corpus and the trained start, showing its progress; a later
  // visit reads both from the Cache API and asks the network for neither.
  await context.addInitScript(() => {
    window.__loading = [];
    new MutationObserver(() => {
      const text = document.querySelector('#loading span')?.textContent;
      if (text && window.__loading.at(-1) !== text) window.__loading.push(text);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  let assets = [];
  context.on('request', (r) => { if (r.url().endsWith('.plc')) assets.push(new URL(r.url()).pathname); });
  const { page } = await openLab(context, '#dev=4&batch=2');
  assert.deepEqual(assets.sort(), ['/corpus.plc', '/trained-tiny.plc']);
  const shown = await page.evaluate(() => window.__loading);
  assert.ok(shown.some((m) => /^downloading the corpus: [\d.]+( of [\d.]+)? MiB$/.test(m)), JSON.stringify(shown));
  assert.match(await page.textContent('#corpus-origin'), /network/);
  assets = [];
  await page.selectOption('#method', 'l0');
  // A value being typed survives the settings changing elsewhere before it is committed (here
  // the threshold slider; in CI it was the l0 run starting, which put the seed field back to 0
  // between typing and committing, so the link never had the seed).
  await page.fill('#seed', '7');
  await setSlider(page, '#threshold', '0.2');
  assert.equal(await page.inputValue('#seed'), '7', 'a settings change overwrote the field being typed in');
  await page.dispatchEvent('#seed', 'change');
  await page.waitForFunction(() => /method=l0/.test(location.hash) && /seed=7/.test(location.hash) && /threshold=0\.2/.test(location.hash), null, { timeout: 60_000 });
  const link = page.url();
  await page.close();
  const { page: again } = await openLab(context, link.slice(origin.length));
  assert.deepEqual(assets, [], 'the second visit asked the network for the corpus or the model');
  assert.match(await again.textContent('#corpus-origin'), /cache/);
  assert.equal(await again.$('#loading progress'), null);
  assert.equal(await again.inputValue('#method'), 'l0');
  assert.equal(await again.inputValue('#seed'), '7');
  assert.equal(await again.inputValue('#target'), '0.5');
  assert.equal(await again.inputValue('#threshold'), '0.2');
  await again.close();

  // An embed link shows no controls, only Play, and plays the run the link describes.
  const { page: embedded } = await openLab(context, '#embed=1&method=l0&steps=40&dev=4&batch=2');
  assert.equal(await embedded.$('#method'), null, 'an embedded page shows no controls');
  assert.match(await embedded.textContent('.embed-play'), /l0 from the trained model, 40 steps/);
  await embedded.click('#play');
  await waitForStep(embedded, 2, 300_000);
  assert.match(await embedded.textContent('#play'), /Pause/);
  // Pause: the button offers Play again and training stops.
  await embedded.click('#play');
  await waitForIdle(embedded);
  assert.match(await embedded.textContent('#play'), /Play/);
  const paused = await step(embedded);
  await embedded.waitForTimeout(2000);
  assert.equal(await step(embedded), paused, 'the embedded run trained on after Pause');
  await context.close();
});

test('a bad trace file shows an error and the session survives; a good one, and the live run saved, are shown', { timeout: 900_000 }, async () => {
  const context = await cpuBrowser.newContext();
  const { page } = await openLab(context, '#dev=4&batch=2');
  await clickStep(page);
  await waitForStep(page, 1, 300_000);
  await page.setInputFiles('#open-trace', { name: 'broken.pltrace', mimeType: 'application/octet-stream', buffer: Buffer.from('not a trace at all') });
  await page.waitForFunction(() => document.querySelector('#notices')?.textContent.includes('broken.pltrace'), null, { timeout: 30_000 });
  assert.match(await page.textContent('#notices'), /broken\.pltrace: /);
  assert.equal(await page.$('#viewing'), null, 'a bad file must not replace the live view');
  await clickStep(page);
  await waitForStep(page, 2, 300_000);

  // The live run's trace, saved from the page, opens again as a file.
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('#save-trace')]);
  assert.match(download.suggestedFilename(), /^prunelab-[a-z0-9-]+-step2\.pltrace$/);
  const saved = join(await mkdtemp(join(tmpdir(), 'prunelab-saved-')), download.suggestedFilename());
  await download.saveAs(saved);
  await page.setInputFiles('#open-trace', saved);
  await page.waitForSelector('#viewing', { timeout: 30_000 });
  assert.match(await page.textContent('#viewing'), /prunelab-[a-z0-9-]+-step2\.pltrace — /);
  await page.click('#back-to-live');
  await page.waitForSelector('#viewing', { state: 'detached' });

  // A real trace from the native trainer (a few steps are enough to have snapshots).
  const bin = process.env.PRUNELAB_BIN ?? join(targetDir, 'debug', 'prunelab');
  const out = await mkdtemp(join(tmpdir(), 'prunelab-trace-'));
  execFileSync(bin, ['train', '--method', 'adaptive-dropout', '--steps', '4', '--snapshot-every', '2', '--eval-every', '0',
    '--device', 'cpu', '--decoder', 'greedy', '--out', out], { stdio: 'ignore' });
  const heatBefore = await shot(page, '#heatmap-attn-query');
  await page.setInputFiles('#open-trace', join(out, 'trace.pltrace'));
  await page.waitForSelector('#viewing', { timeout: 30_000 });
  assert.match(await page.textContent('#viewing'), /trace\.pltrace — adaptive-dropout · tiny/);
  assert.match(await page.textContent('#frame-label'), /of 3$/);
  assert.ok(!(await shot(page, '#heatmap-attn-query')).equals(heatBefore), 'the opened trace was not drawn');
  await page.click('#back-to-live');
  await page.waitForSelector('#viewing', { state: 'detached' });

  // An export from `prunelab prune`: its manifest and weights, picked together.
  const exportDir = join(out, 'export');
  execFileSync(bin, ['prune', '--checkpoint', join(out, 'checkpoint.plc'), '--budget', '0.6', '--out', exportDir], { stdio: 'ignore' });
  await page.setInputFiles('#open-trace', join(exportDir, 'manifest.json'));
  await page.waitForFunction(() => document.querySelector('#notices')?.textContent.includes('needs its model.safetensors'), null, { timeout: 30_000 });
  await page.setInputFiles('#open-trace', [join(exportDir, 'manifest.json'), join(exportDir, 'model.safetensors')]);
  await page.waitForFunction(() => /^opened export: \d+ parameters/.test(document.querySelector('#opened-export')?.textContent ?? ''), null, { timeout: 120_000 });
  const manifest = JSON.parse(await readFile(join(exportDir, 'manifest.json'), 'utf8'));
  const shown = Number((await page.textContent('#opened-export')).match(/(\d+) parameters/)[1]);
  assert.equal(shown, manifest.params.subsampling + manifest.params.blocks + manifest.params.head);
  assert.match(await page.textContent('#viewing'), /manifest\.json — .* export · \d+ of \d+ parameters/);
  await page.screenshot({ path: join(artefacts, 'lab-export.png'), fullPage: true });
  await page.click('#back-to-live');

  // Start from your own run. A damaged checkpoint is named and changes nothing.
  const checkpoint = await readFile(join(out, 'checkpoint.plc'));
  await page.setInputFiles('#open-trace', { name: 'damaged.plc', mimeType: 'application/octet-stream', buffer: checkpoint.subarray(0, checkpoint.length - 1000) });
  await page.waitForFunction(() => document.querySelector('#notices')?.textContent.includes('damaged.plc'), null, { timeout: 30_000 });
  assert.equal(await step(page), 2, 'a damaged checkpoint changed the run');
  // A dense checkpoint the CLI fine-tuned for two steps from the trained start becomes the start:
  // the page scores its weights before training as `prunelab eval` scores the checkpoint, on the
  // same four dev utterances.
  const own = await mkdtemp(join(tmpdir(), 'prunelab-own-'));
  execFileSync(bin, ['train', '--method', 'none', '--steps', '2', '--init-from', join(root, 'static/trained-tiny.plc'), '--eval-every', '0',
    '--device', 'cpu', '--decoder', 'greedy', '--out', own], { stdio: 'ignore' });
  await page.setInputFiles('#open-trace', join(own, 'checkpoint.plc'));
  await page.waitForFunction(() => document.querySelector('#start-trained')?.textContent.includes('checkpoint.plc')
    && /^Before training, your checkpoint\.plc scores/.test(document.querySelector('#start-score')?.textContent ?? ''), null, { timeout: 120_000 });
  assert.equal(await step(page), 0);
  const scored = JSON.parse(execFileSync(bin, ['eval', '--checkpoint', join(own, 'checkpoint.plc'), '--split', 'dev', '--device', 'cpu', '--json'], { encoding: 'utf8' }));
  const firstFour = scored.report.utterances.slice(0, 4).map((u) => u.words);
  const cliWer = (100 * firstFour.reduce((n, w) => n + w.substitutions + w.deletions + w.insertions, 0)) / firstFour.reduce((n, w) => n + w.reference_len, 0);
  const pageWer = Number(await page.getAttribute('#start-score', 'data-wer'));
  figures.own_start = { page_wer: pageWer, cli_wer: cliWer };
  assert.ok(Math.abs(cliWer - pageWer) < 1e-3, `prunelab eval ${cliWer} %, the page ${pageWer} %`);
  await context.close();
});

// The slider means what the method's knob says (engine `prune::Knob`): for L0 a share of
// parameters removed beyond its own cut. Every cut goes through the engine's one entry point,
// and the heatmaps dim exactly the units that cut removes.
test('in an L0 run the slider and the sweep change the model, and the heatmaps dim what the cut removes', { timeout: 900_000 }, async () => {
  const context = await cpuBrowser.newContext();
  // 8 dev utterances: the cuts are timed on the first 8 (`TIMED_UTTERANCES`) at any size.
  const { page } = await openLab(context, '#method=l0&threshold=0&dev=8&batch=2');
  assert.match(await page.textContent('#knob-label'), /share of parameters removed/i);
  await page.waitForFunction(() => /^\d+ parameters/.test(document.querySelector('#params')?.textContent ?? '') && !document.querySelector('#busy')?.textContent, null, { timeout: 300_000 });
  const count = (text) => Number(text.match(/^(\d+) parameters/)[1]);
  const sizes = [count(await paramsText(page))];
  for (const share of ['0.3', '0.6']) {
    const before = await paramsText(page);
    await setSlider(page, '#threshold', share);
    await page.waitForFunction((old) => document.querySelector('#params')?.textContent !== old && !document.querySelector('#busy')?.textContent, before, { timeout: 300_000 });
    sizes.push(count(await paramsText(page)));
  }
  assert.ok(sizes[1] < sizes[0] && sizes[2] < sizes[1], `parameters did not fall as the slider moved: ${sizes}`);

  // Kept units per site kind: the status line (from the cut) against the heatmaps' dimming.
  const status = Object.fromEntries([...(await page.textContent('#kept')).matchAll(/([a-z0-9.]+) (\d+)\/(\d+)/g)].map((m) => [m[1], Number(m[2])]));
  for (const site of ['ffn1.hidden', 'attn.value', 'conv.input', 'ffn2.hidden']) {
    const dimmed = Number(await page.getAttribute(`[data-site="${site}"] .kept`, 'data-kept'));
    assert.equal(dimmed, status[site], `${site}: the heatmap keeps ${dimmed} units, the cut ${status[site]}`);
  }
  await page.screenshot({ path: join(artefacts, 'lab-l0-cut.png'), fullPage: true });

  await page.click('#sweep');
  await page.waitForFunction(() => Number(document.querySelector('#sweep-points')?.dataset.points) > 0, null, { timeout: 600_000 });
  const distinct = Number(await page.getAttribute('#sweep-points', 'data-distinct'));
  assert.ok(distinct >= 5, `the sweep drew ${distinct} distinct model sizes`);

  // A typed budget of half the parameters gives a cut within 2 % of it, and the cut is timed
  // beside the dense model: at half the parameters it runs faster.
  const beforeTarget = await paramsText(page);
  await page.fill('#cut-target', '50%');
  await page.dispatchEvent('#cut-target', 'change');
  await page.waitForFunction((old) => document.querySelector('#params')?.textContent !== old, beforeTarget, { timeout: 300_000 });
  await page.waitForFunction(() => document.querySelector('#latency')?.dataset.prunedMs && !document.querySelector('#busy')?.textContent, null, { timeout: 300_000 });
  const params = Number(await page.getAttribute('#params', 'data-params'));
  const dense = Number(await page.getAttribute('#params', 'data-dense-params'));
  assert.ok(Math.abs(params - dense / 2) <= 0.02 * dense / 2, `a budget of half of ${dense} parameters cut to ${params}`);
  const denseMs = Number(await page.getAttribute('#latency', 'data-dense-ms'));
  const prunedMs = Number(await page.getAttribute('#latency', 'data-pruned-ms'));
  figures.l0_half_cut = { params, dense, dense_ms: denseMs, pruned_ms: prunedMs, latency: await page.textContent('#latency') };
  assert.ok(prunedMs < denseMs, `at ${params} of ${dense} parameters the cut takes ${prunedMs} ms, the dense model ${denseMs} ms`);
  await page.fill('#cut-target', 'half');
  await page.dispatchEvent('#cut-target', 'change');
  await page.waitForFunction(() => document.querySelector('#notices')?.textContent.includes('"half" is not a target'), null, { timeout: 30_000 });
  await context.close();
});

// Issue 34: the method `none` (no gates, plain training) cuts by weight norms with every
// control, before training and after a step: the slider's share removed and a typed target.
test('with the method none the slider and Cut to cut by weight norms, before and after a step', { timeout: 900_000 }, async () => {
  const context = await cpuBrowser.newContext();
  const { page } = await openLab(context, '#method=none&threshold=0&dev=4&batch=2');
  assert.match(await page.textContent('#knob-label'), /share of parameters removed/i);
  // A cut is shown when #params carries its knob (NaN for a typed target) and nothing is busy.
  const shown = (knob) => page.waitForFunction((k) => document.querySelector('#params')?.dataset.knob === k && !document.querySelector('#busy')?.textContent, knob, { timeout: 300_000 });
  await shown('0.00');
  const dense = Number(await page.getAttribute('#params', 'data-dense-params'));
  const params = async () => Number(await page.getAttribute('#params', 'data-params'));
  await setSlider(page, '#threshold', '0.4');
  await shown('0.40');
  const slid = await params();
  assert.ok(Math.abs(slid - 0.6 * dense) <= 0.02 * dense, `a share of 0.4 removed left ${slid} of ${dense}`);
  await page.fill('#cut-target', '50%');
  await page.dispatchEvent('#cut-target', 'change');
  await shown('NaN');
  const typed = await params();
  assert.ok(typed <= dense / 2 && typed >= 0.98 * dense / 2, `Cut to 50% gave ${typed} of ${dense}`);
  assert.equal((await page.textContent('#chosen-by-norm')).trim(), '', 'no gates, so no tie to break');

  // "Download model": the cut as shown, as `prunelab prune`'s export in one .tar. The CLI scores
  // the archive at the WER the page shows on the same four dev utterances (the CPU backend on
  // both sides, the same lexicon decoder); unpacked by GNU tar, python/prunelab_torch loads it;
  // and the page opens it again.
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('#download-model')]);
  const archive = download.suggestedFilename();
  assert.match(archive, /^prunelab-none-step0-\d+\.tar$/);
  assert.equal(Number(archive.match(/-(\d+)\.tar$/)[1]), typed, 'the archive is the cut shown');
  const downloads = await mkdtemp(join(tmpdir(), 'prunelab-model-'));
  await download.saveAs(join(downloads, archive));
  execFileSync('tar', ['-xf', join(downloads, archive), '-C', downloads]);
  const exported = join(downloads, archive.replace(/\.tar$/, ''));
  const bin = process.env.PRUNELAB_BIN ?? join(targetDir, 'debug', 'prunelab');
  const scored = JSON.parse(execFileSync(bin, ['eval', '--checkpoint', join(downloads, archive), '--split', 'dev', '--device', 'cpu', '--json'], { encoding: 'utf8' }));
  const firstFour = scored.report.utterances.slice(0, 4).map((u) => u.words);
  const errors = firstFour.reduce((n, w) => n + w.substitutions + w.deletions + w.insertions, 0);
  const words = firstFour.reduce((n, w) => n + w.reference_len, 0);
  const pageWer = Number(await page.getAttribute('#params', 'data-wer'));
  figures.downloaded_cut = { params: typed, words, page_wer: pageWer, cli_wer: (100 * errors) / words };
  assert.ok(Math.abs((100 * errors) / words - pageWer) < 1e-3, `prunelab eval: ${errors} errors in ${words} words; the page showed ${pageWer} %`);
  const python = process.env.PRUNELAB_PYTHON ?? (existsSync(join(root, '.venv/bin/python3')) ? join(root, '.venv/bin/python3') : 'python3');
  const loaded = execFileSync(python, ['-c', 'import sys; sys.path.insert(0, "python"); import prunelab_torch; '
    + 'm = prunelab_torch.load(sys.argv[1]); print(sum(p.numel() for p in m.parameters()))', exported], { cwd: root, encoding: 'utf8' });
  assert.ok(Number(loaded) > 0, `prunelab_torch: ${loaded}`);
  await page.setInputFiles('#open-trace', join(downloads, archive));
  await page.waitForFunction(() => /^opened export: \d+ parameters/.test(document.querySelector('#opened-export')?.textContent ?? ''), null, { timeout: 120_000 });
  assert.equal(Number((await page.textContent('#opened-export')).match(/(\d+) parameters/)[1]), typed);
  await page.click('#back-to-live');

  // Listen marks the cut model's errors against the reference: on an utterance where the CLI
  // counted substitutions, the page shows the same hypothesis with the same marks.
  const marked = scored.report.utterances.slice(0, 4).findIndex((u) => u.words.substitutions > 0);
  assert.ok(marked >= 0, 'no substitution in the first four utterances to look for');
  const expected = scored.report.utterances[marked];
  await page.selectOption('#utterance', String(marked));
  await page.waitForFunction((id) => document.querySelector('#utterance option:checked')?.textContent === id, expected.id);
  const marks = await page.$$eval('#listen-pruned .word', (spans) => spans.map((s) => [s.className.replace('word ', ''), s.textContent]));
  const count = (kind) => marks.filter(([k]) => k === kind).length;
  assert.deepEqual([count('sub'), count('ins'), count('del')], [expected.words.substitutions, expected.words.insertions, expected.words.deletions], JSON.stringify(marks));
  const heard = marks.filter(([k]) => k !== 'del').map(([, w]) => w).join(' ');
  assert.equal(heard, expected.hypothesis);
  await clickStep(page);
  await waitForStep(page, 1);
  await waitForIdle(page);
  await setSlider(page, '#threshold', '0.2');
  await shown('0.20');
  const after = await params();
  assert.equal(Number(await page.getAttribute('#params', 'data-step')), 1, 'the cut is of the model after its step');
  assert.ok(Math.abs(after - 0.8 * dense) <= 0.02 * dense, `after a step, a share of 0.2 removed left ${after} of ${dense}`);
  await context.close();
});

// The run is kept in the browser's storage (a copy after the first step, at each snapshot and
// at most 15 s apart): a reload offers to continue it, and continuing gives the run that was
// never interrupted (the same loss at a later step, on the CPU backend). Where the storage
// refuses, the page says so and trains on.
test('a reload carries the kept run on as if never interrupted; refused storage is said and training goes on', { timeout: 900_000 }, async () => {
  const settings = '#dev=4&batch=2&snapshot=2&method=adaptive-dropout';
  const lossAt = async (page, n) => {
    for (let done = await step(page); done < n; done = await step(page)) {
      // The count is read before the click: read after it, it can already be one on (the
      // CPU backend's step holds the page's thread, so the read waits for the step to end),
      // and the wait would be for a step never asked for.
      await clickStep(page);
      await waitForStep(page, done + 1);
    }
    await waitForIdle(page);
    return page.getAttribute('#last-loss', 'data-loss');
  };

  // Uninterrupted, in a browser whose storage refuses the run.
  const refusing = await cpuBrowser.newContext();
  await refusing.addInitScript(() => {
    const open = CacheStorage.prototype.open;
    CacheStorage.prototype.open = function (name) {
      return name.startsWith('prunelab-saved-run') ? Promise.reject(new DOMException('the quota is exceeded', 'QuotaExceededError')) : open.call(this, name);
    };
  });
  const { page: whole } = await openLab(refusing, settings);
  const uninterrupted = await lossAt(whole, 5);
  assert.match(await whole.textContent('#notices'), /cannot keep the run in this browser's storage \(.*quota is exceeded.*\): training goes on/);
  assert.equal(await whole.getAttribute('#kept-copy [data-step]', 'data-stored'), 'false');
  await refusing.close();

  // Interrupted by a reload after step 3, carried on from the copy the browser kept.
  const context = await cpuBrowser.newContext();
  const { page } = await openLab(context, settings);
  await lossAt(page, 3);
  await page.waitForFunction(() => document.querySelector('#kept-copy [data-step]')?.dataset.stored === 'true', null, { timeout: 60_000 });
  const kept = Number(await page.getAttribute('#kept-copy [data-step]', 'data-step'));
  assert.ok(kept >= 2 && kept <= 3, `the copy kept is of step ${kept}`);
  await page.reload();
  await page.waitForSelector('#continue-saved', { timeout: 300_000 });
  assert.match(await page.textContent('#saved-run'), new RegExp(`adaptive-dropout from the trained model, 600 steps, at step ${kept}\\.`));
  await waitForIdle(page);
  await page.click('#continue-saved');
  await page.waitForFunction((k) => document.querySelector('#step-count')?.dataset.step === String(k) && !document.querySelector('#busy')?.textContent, kept, { timeout: 300_000 });
  assert.equal(await page.$('#saved-run'), null, 'the offer stays after continuing');
  assert.equal(await lossAt(page, 5), uninterrupted, 'the carried-on run differs from the uninterrupted one at step 5');
  await context.close();
});

test('without WebGPU the CPU badge appears and training still runs', { timeout: 900_000 }, async () => {
  const context = await cpuBrowser.newContext();
  await context.addInitScript({ path: join(root, 'tests/browser/microphone_timeline.js') });
  // The module's raw exports, for the trap at the end of this test.
  await context.addInitScript(() => addEventListener('TrunkApplicationStarted', (e) => { window.__wasmExports = e.detail.wasm; }));
  const { page, readyMs } = await openLab(context);
  figures.cpu_ready_ms = readyMs;
  assert.equal(await page.getAttribute('#backend', 'data-webgpu'), 'false');
  assert.match(await page.textContent('#backend'), /^CPU \(wasm\) · /);

  // The lab starts from the trained model and says what it scores before any training, with
  // the CLI's lexicon decoder on the whole dev split.
  await page.waitForFunction(() => /^Before training/.test(document.querySelector('#start-score')?.textContent ?? ''), null, { timeout: 300_000 });
  const start = (await page.textContent('#start-score')).match(/the trained model scores dev WER ([\d.]+)% \(lexicon search; greedy ([\d.]+)%\) on 48 dev utterances, 377 words/);
  assert.ok(start, await page.textContent('#start-score'));
  figures.trained_start_dev_wer = Number(start[1]);
  figures.trained_start_dev_wer_greedy = Number(start[2]);
  assert.ok(figures.trained_start_dev_wer <= 15, `the trained start scores ${start[1]}% before training`);

  // Speak to it: the fake microphone's sentence is recorded, played back, and heard by the
  // dense and the cut model (words where the cut model differs marked).
  await page.click('#record');
  await page.waitForSelector('#heard-dense', { timeout: 300_000 });
  const heard = (await page.textContent('#heard-dense')).trim();
  figures.microphone_dense_heard = heard;
  figures.microphone_pruned_heard = (await page.textContent('#heard-pruned')).trim().replace(/\s+/g, ' ');
  figures.microphone_dense_wer = wer(spoken, heard);
  // When the recorder started after the microphone was granted, and how much of the sentence
  // it holds (microphone_timeline.js): what a failure below is to be read with.
  figures.microphone = await page.evaluate(() => window.__microphone);
  assert.ok(figures.microphone_dense_wer <= 50, `the dense model heard "${heard}" for "${spoken}": ${JSON.stringify(figures.microphone)}`);
  // Playback: the button says so until Web Audio reports the end, which comes no sooner than
  // the recording lasts (the audio clock runs in real time however loaded the machine is).
  const recordedSeconds = Number(await page.getAttribute('#heard', 'data-seconds'));
  assert.equal(await page.isEnabled('#play-recording'), true);
  const playedFrom = Date.now();
  await page.click('#play-recording');
  assert.equal(await page.getAttribute('#play-recording', 'data-playing'), 'true');
  await page.waitForFunction(() => document.querySelector('#play-recording')?.dataset.playing === 'false', null, { timeout: 120_000 });
  const playedSeconds = (Date.now() - playedFrom) / 1000;
  assert.ok(playedSeconds >= 0.9 * recordedSeconds, `a ${recordedSeconds} s recording finished playing after ${playedSeconds} s`);
  const lossBefore = await shot(page, '#loss-curve');
  const t0 = Date.now();
  await page.click('#play');
  await waitForStep(page, 30);
  figures.cpu_steps = await step(page);
  figures.cpu_seconds = (Date.now() - t0) / 1000;
  figures.cpu_rate_label = await page.textContent('#rate');
  await page.click('#play');
  await waitForIdle(page);
  assert.ok(!(await shot(page, '#loss-curve')).equals(lossBefore), 'the loss curve did not change');

  // The scrubber replays history: the first snapshot differs from the latest.
  const latest = await shot(page, '#heatmap-ffn2-hidden');
  await setSlider(page, '#scrubber', '0');
  await page.waitForFunction(() => /^step 0 · snapshot 1 of \d+$/.test(document.querySelector('#frame-label')?.textContent ?? ''));
  assert.ok(!(await shot(page, '#heatmap-ffn2-hidden')).equals(latest), 'scrubbing back did not change the heatmap');

  // Hovering names the unit under the pointer.
  const heat = page.locator('#heatmap-ffn1-hidden');
  const box = await heat.boundingBox();
  await heat.hover({ position: { x: box.width * 0.5, y: box.height * 0.1 } });
  await page.waitForFunction(() => /block 0 · unit \d+ · retention 0\.\d{3}/.test(document.querySelector('[data-site="ffn1.hidden"] .hover')?.textContent ?? ''));

  // A sweep draws the trade-off curve (its thresholds are deciles of the retention scores, so
  // even early in training its points span model sizes).
  // Screenshots wait for a quiet page: taken while a scoring holds the page's thread they time
  // out on a loaded machine, so the sweep's end is awaited first.
  const plot = await shot(page, '#tradeoff-plot');
  await page.click('#sweep');
  await page.waitForFunction(() => Number(document.querySelector('#sweep-points')?.dataset.points) > 0, null, { timeout: 600_000 });
  await waitForIdle(page);
  assert.ok(!(await shot(page, '#tradeoff-plot')).equals(plot), 'the sweep curve was not drawn');

  // A batch larger than the backend can hold is refused before a step asks for it (that step
  // would panic, and a panic ends the page), with the largest that fits; the run goes on with
  // the batch it had.
  const before = await step(page);
  await page.fill('#batch', '1000');
  await page.dispatchEvent('#batch', 'change');
  await page.waitForFunction(() => /a batch of 1000 s needs \d+ MiB for the first subsampling convolution's output, and this backend's largest buffer is 80 MiB: choose a batch of at most \d+ s/.test(document.querySelector('#notices')?.textContent ?? ''), null, { timeout: 120_000 });
  await page.waitForFunction(() => document.querySelector('#batch')?.value === '16', null, { timeout: 60_000 });
  await clickStep(page);
  await waitForStep(page, before + 1);
  await page.screenshot({ path: join(artefacts, 'lab-cpu.png'), fullPage: true });

  // A trap — here an allocation the module cannot make, which runs no panic hook — stops the
  // lab with a notice; Restart starts a fresh instance of the module in the same page, on the
  // link's settings, and it trains.
  const hash = await page.evaluate(() => location.hash);
  await page.evaluate(() => setTimeout(() => window.__wasmExports.__wbindgen_malloc(0xfffffff0, 8)));
  await page.waitForSelector('#stopped', { timeout: 60_000 });
  assert.match(await page.textContent('#stopped'), /^The lab stopped on an internal error \(unreachable/);
  await page.click('#restart');
  await page.waitForFunction(() => !document.querySelector('#stopped') && document.querySelector('#step-count')?.dataset.step === '0', null, { timeout: 300_000 });
  assert.equal(await page.evaluate(() => location.hash), hash);
  await waitForIdle(page);
  await clickStep(page);
  await waitForStep(page, 1);
  await context.close();
});

test('compare trains three methods on the same batches and shows them side by side', { timeout: 900_000 }, async () => {
  const context = await cpuBrowser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Chart failures are logged as warnings: a comparison that cannot draw fails here.
  page.on('console', (m) => { if (m.type() === 'error' || /cannot draw/.test(m.text())) errors.push(m.text()); });
  const started = Date.now();
  // Four steps of each method, scored on four dev utterances. Embedded, the comparison waits
  // for Play (opened plainly, a comparison link starts at once), so the plot is seen before.
  await page.goto(origin + '#compare=adaptive-dropout,l0,magnitude&steps=4&dev=4&batch=4&embed=1');
  // The start is scored (the plot's first point) and magnitude's one-shot curve swept.
  await page.waitForSelector('#compare-table tr[data-method="start"]', { timeout: 300_000 });
  await waitForIdle(page);
  assert.match(await page.textContent('.embed-play'), /adaptive-dropout, l0, magnitude side by side from the trained model, 4 steps/);
  const plotBefore = await shot(page, '#compare-plot');
  await page.click('#play');
  await page.waitForFunction(() => document.querySelector('#compare-progress')?.dataset.complete === 'true', null, { timeout: 800_000 });
  figures.compare_seconds = (Date.now() - started) / 1000;
  assert.ok(!(await shot(page, '#compare-plot')).equals(plotBefore), 'the compare plot did not change');
  // Three curves of at least five model sizes each (magnitude's: the start cut one-shot).
  const curves = Object.fromEntries((await page.getAttribute('#compare-plot', 'data-curves')).split(' ').map((c) => c.split('=')));
  figures.compare_curve_sizes = curves;
  assert.deepEqual(Object.keys(curves), ['adaptive-dropout', 'l0', 'magnitude']);
  assert.ok(Object.values(curves).every((n) => Number(n) >= 5), JSON.stringify(curves));
  assert.match(await page.textContent('#compare-progress'), /^adaptive-dropout step 4\/4, loss [\d.]+ · l0 step 4\/4, loss [\d.]+ · magnitude step 4\/4, loss [\d.]+$/);
  const rows = await page.$$eval('#compare-table tr[data-method]', (trs) =>
    trs.map((r) => ({
      method: r.dataset.method, params: Number(r.dataset.params), wer: Number(r.dataset.wer), speedup: Number(r.dataset.speedup),
      change: Number(r.dataset.change), low: Number(r.dataset.changeLow), high: Number(r.dataset.changeHigh),
    })));
  figures.compare_rows = rows;
  assert.deepEqual(rows.map((r) => r.method), ['start', 'adaptive-dropout', 'l0', 'magnitude']);
  const dense = rows[0].params;
  for (const r of rows.slice(1)) {
    // Every method cut to the same budget, half of the parameters: at most half, within 2 %.
    assert.ok(r.params <= dense / 2 && r.params >= 0.98 * dense / 2, `${r.method}: ${r.params} of ${dense}`);
    assert.ok(r.speedup > 0 && Number.isFinite(r.wer), JSON.stringify(r));
    // Its change against the start, with the paired-bootstrap interval around it.
    assert.ok(Math.abs(r.change - (r.wer - rows[0].wer)) < 0.02, JSON.stringify(r));
    assert.ok(r.low <= r.change && r.change <= r.high, JSON.stringify(r));
  }
  // All curves on one plot, drawn by plotters in each method's colour (blue, orange, green).
  const colours = await page.$eval('#compare-plot', (canvas) => {
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const count = (r, g, b) => { let n = 0; for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) n++; return n; };
    return [count(0x1f, 0x6f, 0xeb), count(0xbc, 0x4c, 0x00), count(0x1a, 0x7f, 0x37)];
  });
  // A legend swatch is 80 pixels; a curve of nine points and its large dot are a few hundred
  // (fewer where curves overlap: 276 for L0 under adaptive dropout's in one run).
  assert.ok(colours.every((n) => n > 160), `pixels per method colour: ${colours}`);
  // Heatmaps side by side, one set per method.
  assert.deepEqual(await page.$$eval('.method-heatmaps', (fs) => fs.map((f) => f.dataset.method)), ['adaptive-dropout', 'l0', 'magnitude']);
  assert.match(await page.evaluate(() => location.hash), /compare=adaptive-dropout,l0,magnitude/);
  await page.screenshot({ path: join(artefacts, 'lab-compare.png'), fullPage: true });
  // Back to one run: the single-run views return and the link no longer compares.
  await page.click('#end-compare');
  await page.waitForSelector('#tradeoff-plot', { timeout: 120_000 });
  assert.doesNotMatch(await page.evaluate(() => location.hash), /compare=/);
  assert.deepEqual(errors, []);
  await context.close();
});
