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

import {chromium} from 'playwright-core';
import {writeFileSync} from 'node:fs';

const [url, noisePath, resultPath, screenshotPath] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // As root in a container, without network: no sandbox, no background fetches.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
try {
  const page = await browser.newPage({viewport: {width: 1000, height: 720}});
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  // LiteRT's wasm logs its INFO / WARNING lines (and the absent WebGPU adapter)
  // through console.error; anything else printed as an error counts.
  const runtimeLog = /^(INFO|WARNING): |WebGPU|No available adapters/;
  page.on('console', (m) => {
    if (m.type() === 'error' && !runtimeLog.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.hostname !== '127.0.0.1') errors.push(`request outside 127.0.0.1: ${r.url()}`);
  });
  await page.goto(url);
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
  writeFileSync(resultPath, JSON.stringify({float32, int8, errors}));
} finally {
  await browser.close();
}
