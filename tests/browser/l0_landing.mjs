// Where L0 lands in the page: trains one L0 run in the lab at its own settings (the trained
// start, 600 steps, target sparsity 0.5, the slider at 0 so the page shows L0's own cut) on the
// CPU backend in wasm, to its end, and prints the share of the prunable parameters that cut
// removes beside the target, with the parameters, dev WER and training rate. The issue asks
// for L0's landing in the lab as well as natively; a run takes about 14 minutes here, so it
// is a measurement, not part of the test suite.
//
//   node tests/browser/l0_landing.mjs [SEED] [--steps N] [--download DIR]
//
// With --download, the cut is also saved as the CLI's export (for `prunelab eval`).
import { join } from 'node:path';
import { serveDist, launchCpuWithMicrophone, openLab, step, waitForIdle } from './lab_page.mjs';

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const seed = Number(positional[0] ?? 0);
const steps = Number(option('--steps') ?? 600);
const downloadDir = option('--download');

const { server, origin } = await serveDist();
const browser = await launchCpuWithMicrophone();
try {
  const context = await browser.newContext({ acceptDownloads: true });
  const { page } = await openLab(context, origin, `#method=l0&threshold=0&seed=${seed}&steps=${steps}`);
  await waitForIdle(page);
  const target = await page.inputValue('#target');
  const started = Date.now();
  await page.click('#play');
  let last = -1;
  for (;;) {
    const done = await step(page);
    if (done >= steps) break;
    if (Math.floor(done / 50) !== last) {
      const minutes = (Date.now() - started) / 60_000;
      console.error(`step ${done} of ${steps}, ${minutes.toFixed(1)} min`);
      last = Math.floor(done / 50);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  const trainSeconds = (Date.now() - started) / 1000;
  // At its last step the page cuts at the slider (L0's own cut at 0) and scores the cut.
  await page.waitForFunction((n) => document.querySelector('#params')?.dataset.step === String(n), steps, { timeout: 600_000 });
  await waitForIdle(page);
  const shown = await page.$eval('#params', (p) => ({ ...p.dataset, text: p.textContent }));
  const kept = await page.textContent('#kept');
  const result = {
    seed,
    steps,
    target_sparsity: Number(target),
    prunable_sparsity: Number(shown.prunableSparsity),
    params: Number(shown.params),
    dense_params: Number(shown.denseParams),
    dev_wer: Number(shown.wer),
    knob: Number(shown.knob),
    train_seconds: Math.round(trainSeconds),
    kept,
    summary: shown.text,
  };
  if (downloadDir) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-model')]);
    const path = join(downloadDir, download.suggestedFilename());
    await download.saveAs(path);
    result.export = path;
  }
  console.log(JSON.stringify(result, null, 1));
} finally {
  await browser.close();
  server.close();
}
