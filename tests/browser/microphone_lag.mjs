// Why the microphone check can fail on a loaded machine: records the lab's microphone timeline
// (microphone_timeline.js) over a few recordings, the way the CPU browser test makes them (the
// trained start, "Speak" pressed as soon as its score shows), optionally with one core kept
// busy by a shell loop, or with the lab training while it records (Speak pressed during
// training, as a user may).
//
//   node tests/browser/microphone_lag.mjs [RUNS] [--load] [--training]
//
// Prints one line per recording: how long after the microphone was granted the recorder
// started, how long it recorded, where the sentence starts in it and how much of it is loud,
// and what the dense model heard (with its WER against the spoken sentence).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { root, spoken, wer, serveDist, launchCpuWithMicrophone, openLab, waitForStep } from './lab_page.mjs';

const runs = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 3);
const load = process.argv.includes('--load') ? spawn('sh', ['-c', 'while :; do :; done']) : null;
const training = process.argv.includes('--training');
const { server, origin } = await serveDist();
const browser = await launchCpuWithMicrophone();
try {
  for (let run = 0; run < runs; run++) {
    const context = await browser.newContext();
    await context.addInitScript({ path: join(root, 'tests/browser/microphone_timeline.js') });
    const { page } = await openLab(context, origin);
    await page.waitForFunction(() => /^Before training/.test(document.querySelector('#start-score')?.textContent ?? ''), null, { timeout: 300_000 });
    if (training) {
      await page.click('#play');
      await waitForStep(page, 1);
    }
    await page.click('#record');
    await page.waitForSelector('#heard-dense', { timeout: 300_000 });
    const heard = (await page.textContent('#heard-dense')).trim();
    const t = await page.evaluate(() => window.__microphone);
    const ms = (x) => (x === undefined ? '–' : `${Math.round(x)} ms`);
    console.log([
      `run ${run + 1}${load ? ' (one core busy)' : ''}${training ? ' (training)' : ''}:`,
      `granted ${ms(t.granted - t.requested)} after asking,`,
      `recorder started ${ms(t.recorderStart - t.granted)} after that,`,
      `recorded ${t.recordedSeconds?.toFixed(2)} s (stopped ${ms(t.recorderStop - t.recorderStart)} after start),`,
      `speech from ${t.speechOnsetSeconds?.toFixed(2)} s, ${t.speechSeconds?.toFixed(2)} s loud;`,
      `heard "${heard}" (WER ${wer(spoken, heard).toFixed(0)} %)`,
    ].join(' '));
    await context.close();
  }
} finally {
  load?.kill();
  await browser.close();
  server.close();
}
