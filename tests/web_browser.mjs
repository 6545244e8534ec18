// The browser both page drivers use (tests/web_driver.mjs, tests/web_driver_open.mjs):
// Debian's headless Chromium through playwright-core (from `npm ci`), one page, and
// the errors it reports.
//
//   const result = await withPage(url, async (page) => ({...}));  // {..., errors}

import {chromium} from 'playwright-core';

// Opens `url` in a fresh headless Chromium, runs `work(page)` and returns its result
// with `errors`: page errors, console errors other than LiteRT's own log lines, and
// any request that leaves 127.0.0.1. The browser is closed whatever happens.
export async function withPage(url, work) {
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
    return {...(await work(page)), errors};
  } finally {
    await browser.close();
  }
}
