// Drives the page of the shipped pretrained models (draw-export --web without --workdir) in Debian's
// headless Chromium (playwright-core from `npm ci`), for tests/test_web.py:
//
//   node tests/web_driver_pretrained.mjs URL RESULT.json SCREENSHOT.png SECOND CAPTION
//
// Waits for the page's first drawing (the decoder it opens with, seed 0); picks SECOND in the
// "pretrained model" select and waits for its drawing; types CAPTION into the caption box, presses
// Enter and waits for the caption decoder's drawing (SCREENSHOT.png shows it at two thirds of the
// steps). RESULT.json: {opened, switched, captioned: runs ({decoder, caption, captions, noise,
// canvases, write_windows, n, quantization, source, selected, sourceText}), options (the select's
// values), requests (the paths fetched after opening), errors}.

import {writeFileSync} from 'node:fs';
import {withPage} from './web_browser.mjs';

const [url, resultPath, screenshotPath, second, caption] = process.argv.slice(2);
const result = await withPage(url, async (page) => {
  const requests = [];
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  const drawn = (check) => page.waitForFunction(check, null, {timeout: 120000});
  const run = () => page.evaluate(() => {
    const p = window.drawPage;
    const text = (id) => document.getElementById(id).textContent;
    const common = {selected: document.getElementById('decoder').value, sourceText: text('source'),
                    errorText: text('error')};
    if (!p.last || p.error) return {...common, error: p.error};
    const {decoder, caption, captions, noise, canvases, write_windows: windows, n, quantization, source} = p.last;
    return {...common, decoder, caption, captions: captions ? Array.from(captions) : null, noise: Array.from(noise),
            canvases: Array.from(canvases), write_windows: Array.from(windows), n, quantization, source};
  });
  await drawn(() => window.drawPage && (window.drawPage.error ||
                                        (window.drawPage.last && window.drawPage.last.source.startsWith('seed'))));
  const opened = await run();
  const options = await page.evaluate(() => Array.from(document.getElementById('decoder').options).map((o) => o.value));
  await page.selectOption('#decoder', second);
  await page.waitForFunction((name) => {
    const p = window.drawPage;
    return p.error || (p.last && p.last.decoder === name && p.last.source.startsWith('seed'));
  }, second, {timeout: 120000});
  const switched = await run();
  const box = page.locator('#caption');
  await box.fill('');
  await box.pressSequentially(caption);
  await box.press('Enter');
  await page.waitForFunction((text) => {
    const p = window.drawPage;
    return p.error || (p.last && p.last.caption === text && p.last.source.startsWith('seed'));
  }, caption, {timeout: 120000});
  const captioned = await run();
  // T = canvases [n, T, H, W, C] over images [n, H, W, C].
  const steps = await page.evaluate(() => window.drawPage.last.canvases.length / window.drawPage.last.images.length);
  await page.evaluate((t) => window.drawPage.showStep(t), Math.floor((2 * steps) / 3));
  await page.screenshot({path: screenshotPath});
  return {opened, switched, captioned, options, requests};
});
writeFileSync(resultPath, JSON.stringify(result));
