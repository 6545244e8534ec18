// Opens a draw-export --web page in Debian's headless Chromium (playwright-core
// from `npm ci`) WITHOUT touching it, for tests/test_web.py's pretrained-page test:
//
//   node tests/web_driver_open.mjs URL RESULT.json SCREENSHOT.png
//
// Waits for the page's first drawing (the seeded noise it draws on opening) or
// its error, and writes RESULT.json: {quantization, n, source, noise, images,
// canvases, write_windows, sourceText, errorText, infoText, models, errors}.

import {writeFileSync} from 'node:fs';
import {withPage} from './web_browser.mjs';

const [url, resultPath, screenshotPath] = process.argv.slice(2);
const result = await withPage(url, async (page) => {
  await page.waitForFunction(() => {
    const p = window.drawPage;
    return p && (p.error || (p.last && p.last.source.startsWith('seed')));
  }, null, {timeout: 120000});
  await page.evaluate(() => window.drawPage.last && window.drawPage.showStep(1));
  await page.screenshot({path: screenshotPath});
  return page.evaluate(() => {
    const p = window.drawPage;
    const text = (id) => document.getElementById(id).textContent;
    const out = {sourceText: text('source'), errorText: text('error'), infoText: text('info'),
                 models: Array.from(document.getElementById('model').options).map((o) => o.value)};
    if (!p.last || p.error) return out;
    const {quantization, n, source, noise, images, canvases, write_windows: windows} = p.last;
    return {...out, quantization, n, source, noise: Array.from(noise), images: Array.from(images),
            canvases: Array.from(canvases), write_windows: Array.from(windows)};
  });
});
writeFileSync(resultPath, JSON.stringify(result));
