// Drives the draw-export --web page in Debian's headless Chromium (playwright-core
// from `npm ci`), for tests/test_web.py:
//
//   node tests/web_driver.mjs URL NOISE.npy RESULT.json SCREENSHOT.png
//
// Opens URL, uploads NOISE.npy through the page's file input, waits for the
// float32 run, switches the model to int8 (same noise), and writes RESULT.json:
// {float32: {images, canvases, write_windows, msPerImage, n}, int8: {...},
// errors}. Takes SCREENSHOT.png of the float32 drawing frozen at two thirds
// of the steps (write windows visible).

import {writeFileSync} from 'node:fs';
import {withPage} from './web_browser.mjs';

const [url, noisePath, resultPath, screenshotPath] = process.argv.slice(2);
const result = await withPage(url, async (page) => {
  await page.waitForFunction(() => window.drawPage && window.drawPage.ready, null, {timeout: 60000});
  await page.evaluate(() => window.drawPage.ready);
  const collect = async (quantization) => {
    await page.waitForFunction((q) => {
      const p = window.drawPage;
      return p.error || (p.last && p.last.source.endsWith('.npy') && p.last.quantization === q);
    }, quantization, {timeout: 120000});
    return page.evaluate(() => {
      const p = window.drawPage;
      if (p.error) return {error: p.error};
      const {n, msPerImage, images, canvases, write_windows: windows} = p.last;
      return {n, msPerImage, images: Array.from(images), canvases: Array.from(canvases),
              write_windows: Array.from(windows)};
    });
  };
  await page.setInputFiles('#noise-file', noisePath);
  const float32 = await collect('float32');
  const steps = await page.evaluate(() => fetch('./manifest.json').then((r) => r.json()))
      .then((m) => m.num_steps);
  await page.evaluate((t) => window.drawPage.showStep(t), Math.floor((2 * steps) / 3));
  await page.screenshot({path: screenshotPath});
  await page.selectOption('#model', 'int8');
  const int8 = await collect('int8');
  return {float32, int8};
});
writeFileSync(resultPath, JSON.stringify(result));
