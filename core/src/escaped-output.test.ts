/**
 * escapedOutputText: a stdout/stderr event's text as JSON string content, for answers that write a
 * job's output into a JSON document (api/src/job-output-response.ts). What it returns goes between
 * two quotes in the answer, so whatever is stored must not be able to end that string early.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapedOutputText, type JobEvent } from './job-store.ts';

const event = (data: string): JobEvent => ({ id: '1-0', type: 'stdout', data });
/** The answer's string as a client parses it. */
const decoded = (content: string): string => JSON.parse(`"${content}"`) as string;

test('output as appendOutput stores it comes back as the JSON string content of its text', () => {
  const texts = ['', 'plain', 'quote " backslash \\ slash /', 'tab \t nul \u0000 bell \u0007 del \u007f', 'é 😀 \u2028 \u2029 </script>', 'lone \ud800 surrogate \udfff', '\\', '"', '\\"', 'ends with a backslash \\'];
  for (const text of texts) {
    const got = escapedOutputText(event(JSON.stringify({ data: text })));
    assert.equal(got, JSON.stringify(text).slice(1, -1), JSON.stringify(text));
    assert.equal(decoded(got), text);
  }
});

test('stored escapes are used as they are when they are valid JSON', () => {
  assert.equal(escapedOutputText(event('{"data":"\\u0041\\/"}')), '\\u0041\\/');
  assert.equal(decoded('\\u0041\\/'), 'A/');
});

test('data of any other shape is parsed and escaped again: nothing stored ends the string early', () => {
  const cases: Array<[string, string]> = [
    ['{"data":"a","injected":"b"}', 'a'],
    ['{"injected":"b","data":"a"}', 'a'],
    ['{"data":"x","data":"\\"y"}', '"y'],
    ['{"data": "spaced"}', 'spaced'],
  ];
  for (const [data, text] of cases) {
    const got = escapedOutputText(event(data));
    assert.equal(decoded(got), text, data);
    assert.doesNotMatch(got, /(^|[^\\])(\\\\)*"/, `an unescaped quote in ${JSON.stringify(got)}`);
  }
  // Not JSON at all: an error, as reading its text always was.
  assert.throws(() => escapedOutputText(event('{"data":"a\\"}')), SyntaxError);
  assert.throws(() => escapedOutputText(event('{"data":"raw\nnewline"}')), SyntaxError);
});

test('stored data that fails the check late, or is very long, is answered, not a hang or a stack overflow', () => {
  // A long run then an unescaped quote: a check that tries every split of the run never returns
  // (with one, 26 characters took 0.36 s and each 2 more took 4 times as long; 64 would hang this
  // file until the runner's timeout fails it).
  for (const n of [30, 64, 100_000]) {
    const data = `{"data":"${'a'.repeat(n)}","x":"y"}`;
    assert.equal(escapedOutputText(event(data)), 'a'.repeat(n));
  }
  // Past what the check's stack holds (16 MiB overflowed it): escaped again instead.
  const long = `line "${'z'.repeat(64)}"\n`.repeat(300_000);
  assert.ok(long.length > 16 * 2 ** 20);
  assert.equal(decoded(escapedOutputText(event(JSON.stringify({ data: long })))), long);
});

