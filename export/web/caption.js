// Caption encoding for the page of a caption decoder (alignDRAW): the token ids
// Python's draw_tf.data.caption_grammar.encode gives, from the manifest's `caption`
// entry (caption_grammar.encoding(): `words` in id order from id 1, `pad_id`,
// `max_caption_length` in tokens, `number_words`, `end_token`, `example`; and
// `input_length`, the width L of the decoder's `captions` input).
//
// The same steps as encode(): lower-case; the end token ('.') split off every word;
// words separated by whitespace (Python's str.split() set of whitespace characters);
// 'zero'..'nine' read as numerals; the end token added when the caption does not
// end with it; then every word must be in the vocabulary and there may be at most
// `max_caption_length` tokens (the period counts). The result is padded with
// `pad_id` to `input_length`. tests/test_caption_web.py checks it against Python.
//
//   import {encodeCaption, CaptionError} from './caption.js';
//   const ids = encodeCaption('The digit 7 is at the top of the digit 2', manifest.caption);  // Int32Array(L)

// What str.split() with no argument splits on (str.isspace), not JavaScript's \s
// (which adds U+FEFF and lacks U+001C..U+001F and U+0085).
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** A caption the model cannot read: the message lists the vocabulary or states the limit. */
export class CaptionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CaptionError';
  }
}

/** Python's repr() of a word, as encode()'s messages quote it. */
function quoted(word) {
  return word.includes("'") && !word.includes('"') ? `"${word}"` : `'${word.replaceAll("'", "\\'")}'`;
}

/** The tokens of a caption (the steps of caption_grammar._tokens). */
export function captionTokens(text, spec) {
  const end = spec.end_token;
  const words = String(text).toLowerCase().split(end).join(` ${end} `).split(PY_WHITESPACE)
      .filter((w) => w.length > 0)
      .map((w) => (Object.hasOwn(spec.number_words, w) ? spec.number_words[w] : w));
  if (words.length === 0 || words[words.length - 1] !== end) words.push(end);
  return words;
}

/**
 * Token ids of a caption, Int32Array(spec.input_length), as caption_grammar.encode (then padded).
 * Throws CaptionError for an empty caption, an unknown word or too many tokens.
 */
export function encodeCaption(text, spec) {
  const words = captionTokens(text, spec);
  const example = spec.example.replace(/ \.$/, '');
  if (words.length === 1) {
    throw new CaptionError(`The caption is empty; write e.g. '${example}'.`);
  }
  const ids = new Map(spec.words.map((w, i) => [w, i + 1]));
  const unknown = words.filter((w) => !ids.has(w));
  if (unknown.length) {
    throw new CaptionError(
        `Unknown word${unknown.length > 1 ? 's' : ''} ${unknown.map(quoted).join(', ')} in caption ` +
        `${quoted(String(text))}. The vocabulary: ${spec.words.join(' ')} (digits as numerals or ` +
        `zero..nine), e.g. '${example}'.`);
  }
  const limit = Math.min(spec.max_caption_length, spec.input_length);
  if (words.length > limit) {
    throw new CaptionError(
        `Caption ${quoted(String(text))} has ${words.length} tokens (the period counts as one); the ` +
        `limit is ${limit}, e.g. '${spec.example}'.`);
  }
  const out = new Int32Array(spec.input_length).fill(spec.pad_id);
  words.forEach((w, i) => { out[i] = ids.get(w); });
  return out;
}
