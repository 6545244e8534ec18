// Opens a draw-export --web page in Debian's headless Chromium (playwright-core
// from `npm ci`) WITHOUT touching it, for tests/test_web.py's pretrained-page test:
//
//   node tests/web_driver_open.mjs URL RESULT.json SCREENSHOT.png
//
// Waits for the page's first drawing (the seeded noise it draws on opening) or
// its error, and writes RESULT.json: {quantization, n, source, noise, images,
// canvases, write_windows, sourceText, errorText, infoText, models, errors}.

import {chromium} from 'playwright-core';
import {writeFileSync} from 'node:fs';

const [url, resultPath, screenshotPath] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
try {
  const page = await browser.newPage({viewport: {width: 1000, height: 720}});
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  const runtimeLog = /^(INFO|WARNING): |WebGPU|No available adapters/;
  page.on('console', (m) => {
    if (m.type() === 'error' && !runtimeLog.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.hostname !== '127.0.0.1') errors.push(`request outside 127.0.0.1: ${r.url()}`);
  });
  await page.goto(url);
  await page.waitForFunction(() => {
    const p = window.drawPage;
    return p && (p.error || (p.last && p.last.source.startsWith('seed')));
  }, null, {timeout: 120000});
  await page.evaluate(() => window.drawPage.last && window.drawPage.showStep(1));
  await page.screenshot({path: screenshotPath});
  const result = await page.evaluate(() => {
    const p = window.drawPage;
    const text = (id) => document.getElementById(id).textContent;
    const out = {sourceText: text('source'), errorText: text('error'), infoText: text('info'),
                 models: Array.from(document.getElementById('model').options).map((o) => o.value)};
    if (!p.last || p.error) return out;
    const {quantization, n, source, noise, images, canvases, write_windows: windows} = p.last;
    return {...out, quantization, n, source, noise: Array.from(noise), images: Array.from(images),
            canvases: Array.from(canvases), write_windows: Array.from(windows)};
  });
  writeFileSync(resultPath, JSON.stringify({...result, errors}));
} finally {
  await browser.close();
}
