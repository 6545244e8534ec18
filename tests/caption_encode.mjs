// The web page's caption encoder (export/web/caption.js) on a list of captions, for
// tests/test_caption_web.py to compare with Python's caption_grammar.encode (node only, no browser):
//
//   node tests/caption_encode.mjs CASES.json RESULT.json
//
// CASES.json: {spec: the manifest's `caption` entry, captions: [text, ...]}. RESULT.json: one entry
// per caption, {ids: [...]} or {error: message, name: the error's class}.

import {readFileSync, writeFileSync} from 'node:fs';
import {fileURLToPath} from 'node:url';

// The page's module as it is served (an ES module with no imports of its own); a data: URL, because
// this repository's package.json does not make .js files ES modules for Node.
const source = readFileSync(fileURLToPath(new URL('../export/web/caption.js', import.meta.url)), 'utf8');
const {encodeCaption} = await import(`data:text/javascript,${encodeURIComponent(source)}`);
const [casesPath, resultPath] = process.argv.slice(2);
const {spec, captions} = JSON.parse(readFileSync(casesPath, 'utf8'));
const results = captions.map((text) => {
  try {
    return {ids: Array.from(encodeCaption(text, spec))};
  } catch (e) {
    return {error: e.message, name: e.name};
  }
});
writeFileSync(resultPath, JSON.stringify(results));
