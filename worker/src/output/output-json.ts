/**
 * A job's raw output bytes → the JSON its event stream stores (`{"data":"…"}`), in one pass over the
 * bytes: exactly what `JSON.stringify({ data: new StringDecoder('utf8').write(bytes) })` gave, as UTF-8
 * (a byte order mark is kept, as StringDecoder keeps it).
 * Invalid UTF-8 becomes U+FFFD per maximal subpart (the WHATWG decoder's rule), control characters,
 * `"` and `\` are escaped as JSON.stringify escapes them, and everything else is copied as it is.
 *
 * Why not decode, stringify and encode: a job writing binary output made the worker's event loop do
 * each of those on every byte, and V8's UTF-8 decoder is slow on invalid input (16 MiB of random
 * bytes: decode 220 ms, JSON.stringify 108 ms, Buffer.from 171 ms on this 2-vCPU VM). That CPU is
 * the worker's, shared by every job of the host, and no limit of the writing job counts it.
 *
 * A stream of output arrives in pieces; `completeLength` says where a piece can be cut so that its
 * encoding and the rest's, put together, are the encoding of the whole (no character split).
 */

const HEAD = new TextEncoder().encode('{"data":"');
const TAIL = new TextEncoder().encode('"}');
/** Per byte of input at most 6 bytes of output (a control character as \u00XX). */
const MAX_EXPANSION = 6;
const HEX = new TextEncoder().encode('0123456789abcdef');

/** What one byte is, as the first byte of a character: copied, escaped, a lead byte of 2–4, or invalid. */
const enum Kind {
  Copy = 0,
  ShortEscape = 1,
  UnicodeEscape = 2,
  Lead2 = 3,
  Lead3 = 4,
  Lead4 = 5,
  Invalid = 6,
}

const KIND = new Uint8Array(256);
const SHORT_ESCAPE = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  if (b < 0x20) KIND[b] = Kind.UnicodeEscape;
  else if (b < 0x80) KIND[b] = Kind.Copy;
  else if (b < 0xc2) KIND[b] = Kind.Invalid;
  else if (b < 0xe0) KIND[b] = Kind.Lead2;
  else if (b < 0xf0) KIND[b] = Kind.Lead3;
  else if (b < 0xf5) KIND[b] = Kind.Lead4;
  else KIND[b] = Kind.Invalid;
}
for (const [b, c] of [[0x08, 'b'], [0x09, 't'], [0x0a, 'n'], [0x0c, 'f'], [0x0d, 'r'], [0x22, '"'], [0x5c, '\\']] as const) {
  KIND[b] = Kind.ShortEscape;
  SHORT_ESCAPE[b] = c.charCodeAt(0);
}

/** The range the byte after `lead` must be in (the UTF-8 rules that exclude overlongs, surrogates and code points past U+10FFFF). */
function secondLow(lead: number): number {
  return lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
}
function secondHigh(lead: number): number {
  return lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
}
const isContinuation = (b: number) => (b & 0xc0) === 0x80;

/**
 * How many bytes of the character starting at `i` are there and valid so far, up to `need` (its
 * length): `need` when it is whole; fewer when a byte is out of range (those are one maximal
 * subpart, one U+FFFD) or the input ends.
 */
function validPrefix(bytes: Uint8Array, i: number, need: number): number {
  const lead = bytes[i]!;
  if (i + 1 >= bytes.length) return 1;
  const second = bytes[i + 1]!;
  if (second < secondLow(lead) || second > secondHigh(lead)) return 1;
  let k = 2;
  while (k < need && i + k < bytes.length && isContinuation(bytes[i + k]!)) k++;
  return k;
}

/** The stored JSON of one output event of `bytes`; an unfinished character at their end is U+FFFD (cut there with completeLength first to keep it). */
export function encodeOutputJson(bytes: Uint8Array): Buffer {
  const out = scratchFor(HEAD.length + bytes.length * MAX_EXPANSION + TAIL.length);
  out.set(HEAD, 0);
  let o = HEAD.length;
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    let b = bytes[i]!;
    let kind = KIND[b]!;
    while (kind === Kind.Copy) {
      out[o++] = b;
      if (++i === n) break;
      b = bytes[i]!;
      kind = KIND[b]!;
    }
    if (i === n) break;
    if (kind === Kind.ShortEscape) {
      out[o++] = 0x5c;
      out[o++] = SHORT_ESCAPE[b]!;
      i++;
    } else if (kind === Kind.UnicodeEscape) {
      out[o++] = 0x5c; // \u00XX, lower-case as JSON.stringify writes it
      out[o++] = 0x75;
      out[o++] = 0x30;
      out[o++] = 0x30;
      out[o++] = HEX[b >> 4]!;
      out[o++] = HEX[b & 15]!;
      i++;
    } else if (kind === Kind.Invalid) {
      o = replacement(out, o);
      i++;
    } else {
      const need = kind - Kind.Lead2 + 2;
      const have = validPrefix(bytes, i, need);
      if (have === need) {
        for (let k = 0; k < need; k++) out[o++] = bytes[i + k]!;
      } else {
        o = replacement(out, o);
      }
      i += have;
    }
  }
  out.set(TAIL, o);
  return Buffer.from(out.subarray(0, o + TAIL.length));
}

/** One buffer to encode into, kept between calls (the result is copied out of it at its size). */
let scratch = new Uint8Array(0);
function scratchFor(size: number): Uint8Array {
  if (scratch.length < size) scratch = new Uint8Array(Math.max(size, 2 * scratch.length));
  return scratch;
}

/** U+FFFD as UTF-8 at `o`; the offset after it. */
function replacement(out: Uint8Array, o: number): number {
  out[o] = 0xef;
  out[o + 1] = 0xbf;
  out[o + 2] = 0xbd;
  return o + 3;
}

/**
 * The length of the longest start of `bytes` that does not end inside a character that may still
 * be completed by the bytes that follow (at most its last 3 bytes are left out): encoding it and
 * then the rest (with whatever comes next) gives the same text as encoding the whole.
 */
export function completeLength(bytes: Uint8Array): number {
  const n = bytes.length;
  for (let back = 1; back <= 3 && back <= n; back++) {
    const kind = KIND[bytes[n - back]!]!;
    if (kind < Kind.Lead2 || kind > Kind.Lead4) {
      if (isContinuation(bytes[n - back]!)) continue; // look further back for its lead
      return n;
    }
    const need = kind - Kind.Lead2 + 2;
    // A lead byte `back` from the end: unfinished if what follows it is a valid start of its character.
    return back < need && validPrefix(bytes, n - back, need) === back ? n - back : n;
  }
  return n;
}
