// The page of draw-export --web: runs the decoder's `generate` signature with
// LiteRT.js on prior noise (a seeded generator, or an uploaded .npy of shape
// [N, T, z]) and animates the drawing: sigmoid(c_t) of every image at each
// step t, with that step's write window as a red box (as draw-sample --out=x.gif).
//
// The folder's manifest.json names the models. Written for the shipped pretrained
// models (draw-export --web without --workdir) it lists them in `decoders` (each
// with its shapes, files and `pretrained` figures; the top level is the one the
// page opens with, `default_decoder`): the page offers them in its "pretrained
// model" select (a DRAW decoder such as mnist_attention, another such as
// multi_mnist, a caption decoder), names the one drawing and its test figure, and
// its caption box draws with the caption decoder when one ships. URL parameter
// `decoder=NAME` opens another. Without a manifest the page says there is no
// decoder and how to get one.
//
// For scripts (tests/test_web.py) the page exposes window.drawPage: `ready`
// (a promise), `last` (the latest run: noise, images, canvases, write_windows
// as Float32Arrays, msPerImage, and `decoder`, the pretrained model's name or
// null), `runs` (a counter), `error`, and showStep(t) / play() to freeze or
// restart the animation.
//
// A caption decoder (alignDRAW; the manifest's `caption_conditioned` and `caption`)
// shows a caption box: type a caption, press Draw (or Enter), and it is drawn
// step by step with the same seeded noise. The caption is encoded as Python's
// caption_grammar.encode does (caption.js); a word outside the vocabulary or a
// caption past the limit is one message on the page (the vocabulary, or the
// limit), and nothing runs. `last` then also holds `caption` (the text) and
// `captions` (its token ids, Int32Array [L]).
//
// write_windows holds `windowColumns()` numbers per step: the decoder's
// `window_columns` (format 2: centre_x, centre_y, stride, sigma, as
// DrawModel.generate's windows [N, T, 4]); a format-1 manifest has none and its
// decoders return 3 (no sigma). The box needs only the first three.

import {loadLiteRt, loadAndCompile, supportsFeature, Tensor} from './litert/litert.js';
import {parseNpy} from './npy.js';
import {encodeCaption} from './caption.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const page = {ready: null, last: null, runs: 0, error: null, showStep, play};
window.drawPage = page;

// manifest: manifest.json; decoders: what it offers (its `decoders`, or the manifest itself);
// dec: the one drawing now; captionDecoder: the caption decoder, if any (the caption box draws with it).
let manifest, runtimeName, decoders, dec, captionDecoder = null;
const compiled = new Map();  // decoder -> {quantization: CompiledModel}
let timer = null, frame = 0, held = false;

// ---------------------------------------------------------------- noise
// mulberry32: a small seeded uniform generator; Box-Muller turns it into N(0, 1).
// (Not NumPy's or TensorFlow's stream: for the same noise as Python, upload a .npy.)
function normalNoise(count, seed) {
  let a = (seed >>> 0) ^ 0x9e3779b9;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - uniform(), v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

// ---------------------------------------------------------------- model
const LEGACY_WINDOW_COLUMNS = ['centre_x', 'centre_y', 'stride'];  // manifest format 1

/** Numbers per step in write_windows: 4 (manifest format 2), or 3 (format 1). */
function windowColumns(d = dec) {
  return (d.window_columns || LEGACY_WINDOW_COLUMNS).length;
}

// Runs decoder d's `quantization` model on n noise sequences. `caption`: null for DRAW; for a
// caption decoder {text, ids: Int32Array [L]}, one caption for all n images.
async function generate(d, quantization, noise, n, caption = null) {
  const {num_steps: steps, latent_dim: z, image_shape: [h, w, c]} = d;
  const runner = compiled.get(d)[quantization].signatures[d.signature.name];
  const per = {images: h * w * c, canvases: steps * h * w * c, write_windows: steps * windowColumns(d)};
  const result = {};
  for (const k in per) result[k] = new Float32Array(n * per[k]);
  const msPerImage = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const inputs = {noise: new Tensor(noise.slice(i * steps * z, (i + 1) * steps * z), [1, steps, z])};
    if (caption) inputs.captions = new Tensor(caption.ids.slice(), [1, caption.ids.length]);
    const outputs = await runner.run(inputs);
    for (const k in per) {
      const values = outputs[k].toTypedArray();
      if (values.length !== per[k]) {
        throw new Error(`${quantization} model: output ${k} has ${values.length} numbers per image, ` +
            `the manifest says ${per[k]}` + (k === 'write_windows' ?
            ` (${steps} steps x ${windowColumns(d)} window columns; manifest format ` +
            `${d.format_version}: re-run draw-export --web to write the page and ` +
            'decoders together)' : ''));
      }
      result[k].set(values, i * per[k]);
    }
    msPerImage.push(performance.now() - start);
    for (const t of Object.values(inputs)) t.delete();
    for (const t of Object.values(outputs)) t.delete();
  }
  return {quantization, n, noise, msPerImage, ...result,
          ...(caption ? {caption: caption.text, captions: caption.ids} : {})};
}

// generate() with the decoder drawing now; the run becomes page.last.
async function runGenerate(quantization, noise, n, source, caption = null) {
  const run = await generate(dec, quantization, noise, n, caption);
  page.last = {source, decoder: dec.name ?? null, ...run};
  page.runs += 1;
  return page.last;
}

// Loads decoder d's models (once), each called once before any timing (the first run sets up
// XNNPACK's kernels), and makes it the one drawing: the model select lists its files.
async function useDecoder(d) {
  if (!compiled.has(d)) {
    const loaded = {};
    for (const {file, quantization} of d.models) {
      loaded[quantization] = await loadAndCompile(`./${file}`, {accelerator: 'wasm'});
    }
    compiled.set(d, loaded);
    const padding = d.caption_conditioned ?
        {text: '', ids: new Int32Array(d.caption.input_length).fill(d.caption.pad_id)} : null;
    for (const quantization in loaded) {
      await generate(d, quantization, new Float32Array(d.num_steps * d.latent_dim), 1, padding);
    }
  }
  if (dec !== d) clearTimeout(timer);  // the animation of another decoder's run stops here
  dec = d;
  const previous = $('model').value;
  $('model').replaceChildren(
      ...d.models.map(({file, quantization}) => new Option(`${quantization} (${file})`, quantization)));
  if (d.models.some((m) => m.quantization === previous)) $('model').value = previous;
  if (d.name !== undefined) $('decoder').value = d.name;
  showSource();
}

// Switches to decoder d (after any run in progress) and draws the seed in the box with it.
function switchTo(d) {
  queue = queue.then(() => useDecoder(d))
      .catch((e) => fail(`could not load ${d.name}: ${e && e.message ? e.message : e}`));
  return queue.then(() => (dec === d ? drawSeed() : undefined));
}

// ---------------------------------------------------------------- drawing
function layout(n) {
  const [h, w] = dec.image_shape;
  const cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols), pad = 1;
  const gridW = cols * (w + pad) + pad, gridH = rows * (h + pad) + pad;
  const scale = Math.max(2, Math.floor(560 / Math.max(gridW, gridH)));
  return {h, w, cols, rows, pad, gridW, gridH, scale};
}

// Step t of every image (t = steps: the finished picture, no boxes).
function drawFrame(t) {
  const run = page.last;
  const {num_steps: steps, write_size: writeSize, image_shape: [, , c]} = dec;
  const L = layout(run.n);
  const canvas = $('canvas');
  canvas.width = L.gridW * L.scale;
  canvas.height = L.gridH * L.scale;
  const small = new ImageData(L.gridW, L.gridH);
  small.data.fill(128);
  const step = Math.min(t, steps - 1), size = L.h * L.w * c;
  for (let i = 0; i < run.n; i++) {
    const oy = L.pad + Math.floor(i / L.cols) * (L.h + L.pad);
    const ox = L.pad + (i % L.cols) * (L.w + L.pad);
    const base = (i * steps + step) * size;
    for (let y = 0; y < L.h; y++) {
      for (let x = 0; x < L.w; x++) {
        const p = 4 * ((oy + y) * L.gridW + ox + x), q = base + (y * L.w + x) * c;
        for (let k = 0; k < 3; k++) {
          const v = run.canvases[q + (c === 3 ? k : 0)];
          small.data[p + k] = Math.round(Math.min(Math.max(v, 0), 1) * 255);
        }
        small.data[p + 3] = 255;
      }
    }
  }
  const off = new OffscreenCanvas(L.gridW, L.gridH);
  off.getContext('2d').putImageData(small, 0, 0);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  if (t < steps) {
    // The box spans centre +- N / 2 * stride (0-based pixels; pixel k's centre
    // is at (k + 0.5) * scale), clipped to the tile: draw_tf.model.visualize's rule.
    ctx.strokeStyle = 'rgb(255, 40, 40)';
    ctx.lineWidth = Math.max(1, Math.round(L.scale / 3));
    for (let i = 0; i < run.n; i++) {
      const oy = L.pad + Math.floor(i / L.cols) * (L.h + L.pad);
      const ox = L.pad + (i % L.cols) * (L.w + L.pad);
      const at = (i * steps + t) * windowColumns();
      const [cx, cy, stride] = run.write_windows.subarray(at, at + 3);  // sigma (a 4th) not drawn
      const half = writeSize / 2 * stride;
      const px = (v, o, size) => (o + Math.min(Math.max(v + 0.5, 0), size)) * L.scale;
      const left = px(cx - half, ox, L.w), top = px(cy - half, oy, L.h);
      const right = Math.max(px(cx + half, ox, L.w), left), bottom = Math.max(px(cy + half, oy, L.h), top);
      ctx.strokeRect(left, top, right - left, bottom - top);
    }
  }
  frame = t;
  showInfo();
}

function showInfo() {
  const run = page.last;
  const ms = run.msPerImage;
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  const sorted = [...ms].sort((a, b) => a - b);
  const steps = dec.num_steps;
  $('info').textContent = [
    frame < steps ? `step ${frame + 1} / ${steps}` : `finished (${steps} steps)`,
    ...(run.caption !== undefined ? [`caption: ${run.caption}`] : []),
    `${run.n} images, ${run.quantization} model, noise: ${run.source}`,
    `inference: ${mean.toFixed(2)} ms per image`,
    `  (mean of ${ms.length} calls; median ${sorted[sorted.length >> 1].toFixed(2)},`,
    `   min ${sorted[0].toFixed(2)}, max ${sorted[sorted.length - 1].toFixed(2)} ms)`,
    `runtime: LiteRT.js ${manifest.runtime.version}, ${runtimeName}`,
    ...(dec.pretrained ? [`pretrained model: ${dec.pretrained.name}`] : []),
    `model: T=${steps}, z=${dec.latent_dim}, ` +
        `${dec.image_shape.join('x')}, write ${dec.write_size}x${dec.write_size}`,
  ].join('\n');
}

// The line above the board: the pretrained model drawing (and its test figure), and the caption box's hint.
function showSource() {
  const lines = [];
  if (dec.pretrained) {
    const {name, test} = dec.pretrained;
    const bound = test && test.nll_bound !== undefined ? `, test bound ${test.nll_bound.toFixed(2)} nats` : '';
    lines.push(`Pretrained model ${name} (shipped with draw-tf${bound}); ` +
        'draw-export --workdir=DIR --output_dir=OUT --web makes this page for your own model.');
  }
  if (captionDecoder) {
    const spec = captionDecoder.caption;
    lines.push('A caption decoder (alignDRAW' +
        (captionDecoder.name !== undefined ? `, ${captionDecoder.name}` : '') +
        '): type a caption and press Draw or Enter. Words: ' +
        `${spec.words.join(' ')} (at most ${spec.max_caption_length} tokens).`);
  }
  $('source').textContent = lines.join(' ');
}

function schedule() {
  clearTimeout(timer);
  if (held) return;
  const speed = Number($('speed').value);
  const wait = frame >= dec.num_steps ? Math.max(1500, 4 * speed) : speed;
  timer = setTimeout(() => {
    drawFrame(frame >= dec.num_steps ? 0 : frame + 1);
    schedule();
  }, wait);
}

/** Freezes the animation at step t (0-based; t = T shows the finished picture). */
function showStep(t) {
  held = true;
  clearTimeout(timer);
  drawFrame(t);
}

/** Restarts the animation from the first step. */
function play() {
  held = false;
  drawFrame(0);
  schedule();
}

// ---------------------------------------------------------------- controls
// Shows one message under the board (and in page.error); `log`: also on the console (not for a
// caption the user can fix, which is no fault of the page).
function fail(message, log = true) {
  page.error = String(message);
  $('error').textContent = page.error;
  if (log) console.error(page.error);
}

// Runs one after another (a click during a run waits for it).
let queue = Promise.resolve();
function draw(noise, n, source, caption = null) {
  queue = queue.then(async () => {
    $('error').textContent = '';
    page.error = null;
    try {
      await runGenerate($('model').value, noise, n, source, caption);
      play();
    } catch (e) {
      fail(`generate failed: ${e && e.message ? e.message : e}`);
    }
  });
  return queue;
}

/**
 * The caption in the box, encoded for decoder d ({text, ids}); null for a DRAW decoder. A caption the
 * model cannot read shows its one message (the vocabulary or the limit) and gives undefined: draw nothing.
 */
function typedCaption(d = dec) {
  if (!d.caption_conditioned) return null;
  const text = $('caption').value;
  try {
    return {text, ids: encodeCaption(text, d.caption)};
  } catch (e) {
    if (e.name !== 'CaptionError') throw e;
    fail(e.message, false);
    return undefined;
  }
}

function drawSeed() {
  const caption = typedCaption();
  if (caption === undefined) return queue;
  const n = Number(params.get('num') || 16);
  const seed = Math.trunc(Number($('seed').value));
  return draw(normalNoise(n * dec.num_steps * dec.latent_dim, seed), n, `seed ${seed}`, caption);
}

// The caption box's Draw (or Enter): the caption decoder draws the caption, switched to if another draws now.
function drawCaption() {
  if (dec === captionDecoder) return drawSeed();
  if (typedCaption(captionDecoder) === undefined) return queue;  // its message shown; nothing loaded
  return switchTo(captionDecoder);
}

async function upload(file) {
  const caption = typedCaption();
  if (caption === undefined) return;
  try {
    const {shape, data} = parseNpy(await file.arrayBuffer());
    const {num_steps: steps, latent_dim: z} = dec;
    if (shape.length !== 3 || shape[1] !== steps || shape[2] !== z || shape[0] < 1) {
      throw new Error(`noise has shape [${shape}], but this model needs [N, ${steps}, ${z}]`);
    }
    if (!data.every(Number.isFinite)) throw new Error('noise contains NaN or Inf values');
    await draw(data, shape[0], file.name, caption);
  } catch (e) {
    fail(`${file.name}: ${e.message}`);
  }
}

async function main() {
  const response = await fetch('./manifest.json');
  if (!response.ok) {
    throw new Error('there is no decoder in this folder (no manifest.json). No pretrained model came with ' +
        'this page: draw-export --web --output_dir=OUT writes it with the pretrained decoder shipped in ' +
        'draw-tf, or export your own: draw-export --workdir=DIR --output_dir=OUT --web, then serve OUT/web');
  }
  manifest = await response.json();
  decoders = manifest.decoders || [manifest];
  captionDecoder = decoders.find((d) => d.caption_conditioned) || null;
  await loadLiteRt('./litert/wasm/');
  const relaxed = await supportsFeature('relaxedSimd');
  runtimeName = `wasm CPU, XNNPACK, 1 thread, ${relaxed ? 'relaxed-SIMD' : 'compat'} build`;
  if (manifest.decoders) {  // the shipped pretrained models: offer each
    for (const d of decoders) {
      const kind = d.caption_conditioned ? 'caption' : 'DRAW';
      const shape = d.image_shape.slice(0, 2).join('x');
      $('decoder').add(new Option(`${d.name} (${kind}, ${shape}, T=${d.num_steps})`, d.name));
    }
    $('decoder-label').hidden = false;
    $('decoder').addEventListener('change', () => switchTo(decoders.find((d) => d.name === $('decoder').value)));
  }
  const named = (name) => decoders.find((d) => name && d.name === name);
  await useDecoder(named(params.get('decoder')) || named(manifest.default_decoder) || decoders[0]);
  if (params.get('model')) $('model').value = params.get('model');
  if (params.get('seed')) $('seed').value = params.get('seed');
  if (params.get('speed')) $('speed').value = params.get('speed');
  const showSpeed = () => { $('speed-value').textContent = `${$('speed').value} ms / step`; };
  showSpeed();
  $('speed').addEventListener('input', () => { showSpeed(); if (!held) schedule(); });
  $('new-sample').addEventListener('click', () => {
    $('seed').value = Math.trunc(Number($('seed').value)) + 1;
    drawSeed();
  });
  $('draw-seed').addEventListener('click', drawSeed);
  $('model').addEventListener('change', () => {
    const run = page.last;
    if (run && run.decoder === (dec.name ?? null)) {
      draw(run.noise, run.n, run.source, run.captions ? {text: run.caption, ids: run.captions} : null);
    }
  });
  $('noise-file').addEventListener('change', (e) => {
    if (e.target.files.length) upload(e.target.files[0]);
  });
  if (captionDecoder) {
    $('caption-controls').hidden = false;
    $('caption').value = params.get('caption') ?? captionDecoder.caption.example.replace(/ \.$/, '');
    $('draw-caption').addEventListener('click', drawCaption);
    $('caption').addEventListener('keydown', (e) => { if (e.key === 'Enter') drawCaption(); });
    $('draw-caption').disabled = false;
  }
  $('new-sample').disabled = $('draw-seed').disabled = false;
  page.runs = 0;
  await drawSeed();
}

page.ready = main().catch((e) => {
  $('info').textContent = 'No decoder loaded.';
  fail(`could not start: ${e && e.message ? e.message : e}`);
  throw e;
});
