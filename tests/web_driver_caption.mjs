// Drives the page of a caption decoder (draw-export --web on an alignDRAW workdir) in Debian's
// headless Chromium (playwright-core from `npm ci`), for tests/test_caption_web.py:
//
//   node tests/web_driver_caption.mjs URL RESULT.json SCREENSHOT.png CAPTION UNKNOWN LONG AGAIN
//
// Waits for the page's first drawing (its example caption, seed 0); types CAPTION into the caption
// box and presses Enter; takes SCREENSHOT.png of that drawing frozen at two thirds of the steps; types
// UNKNOWN (a word outside the vocabulary) and presses Enter, then LONG (past the limit) and clicks Draw,
// reading the page's message each time; then types AGAIN and presses Enter (the page draws again).
// RESULT.json: {first, typed, again: runs ({caption, captions, noise, images, canvases,
// write_windows, n, quantization, source}), unknown, long: ({errorText, runs, lastCaption}),
// sourceText, errors}.

import {writeFileSync} from 'node:fs';
import {withPage} from './web_browser.mjs';

const [url, resultPath, screenshotPath, caption, unknown, long, again] = process.argv.slice(2);
const result = await withPage(url, async (page) => {
  const run = () => page.evaluate(() => {
    const p = window.drawPage;
    if (p.error && p.error.startsWith('generate failed')) return {error: p.error};
    const {caption, captions, noise, images, canvases, write_windows: windows, n, quantization, source} = p.last;
    return {caption, captions: Array.from(captions), noise: Array.from(noise), images: Array.from(images),
            canvases: Array.from(canvases), write_windows: Array.from(windows), n, quantization, source,
            runs: p.runs};
  });
  const drawn = (text) => page.waitForFunction((t) => {
    const p = window.drawPage;
    // A stale caption message (the page's own, from the step before) does not end the wait; a failed run does.
    return p && ((p.error && p.error.startsWith('generate failed')) ||
                 (p.last && p.last.caption === t && p.last.source.startsWith('seed')));
  }, text, {timeout: 120000});
  const box = page.locator('#caption');
  const type = async (text) => {
    await box.fill('');
    await box.pressSequentially(text);
  };
  const message = async (expected) => {
    await page.waitForFunction((e) => document.getElementById('error').textContent.includes(e), expected,
                               {timeout: 30000});
    return page.evaluate(() => ({errorText: document.getElementById('error').textContent,
                                 runs: window.drawPage.runs, lastCaption: window.drawPage.last.caption}));
  };

  await page.waitForFunction(() => window.drawPage && window.drawPage.ready, null, {timeout: 60000});
  await page.evaluate(() => window.drawPage.ready);
  const first = await run();
  await type(caption);
  await box.press('Enter');
  await drawn(caption);
  const typed = await run();
  const steps = await page.evaluate(() => fetch('./manifest.json').then((r) => r.json()).then((m) => m.num_steps));
  await page.evaluate((t) => window.drawPage.showStep(t), Math.floor((2 * steps) / 3));
  await page.screenshot({path: screenshotPath});
  await type(unknown);
  await box.press('Enter');
  const unknownResult = await message('Unknown word');
  await type(long);
  await page.click('#draw-caption');
  const longResult = await message('the limit is');
  await type(again);
  await box.press('Enter');
  await drawn(again);
  const againRun = await run();
  const sourceText = await page.evaluate(() => document.getElementById('source').textContent);
  return {first, typed, again: againRun, unknown: unknownResult, long: longResult, sourceText,
          errorText: await page.evaluate(() => document.getElementById('error').textContent)};
});
writeFileSync(resultPath, JSON.stringify(result));
