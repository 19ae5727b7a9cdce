import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SbxError } from '../../../core/src/errors.ts';
import { checkImageValues, checkProgram, type ImageValuesUsed } from './image-values.ts';
import { isInsideProc } from '../../../core/src/job-spec.ts';

const ok: ImageValuesUsed = { entrypoint: ['/entry'], cmd: ['run', ''], env: ['PATH=/bin', 'EMPTY=', 'A=b=c'], workingDir: '/app' };

/** The message checkImageValues throws for `used` (invalid_image), or null when it passes. */
function refusal(used: Partial<ImageValuesUsed>): string | null {
  try {
    checkImageValues('reg/img:1', { ...ok, ...used });
    return null;
  } catch (e) {
    assert.ok(e instanceof SbxError && e.code === 'invalid_image', String(e));
    return e.message;
  }
}

test('what a job takes from its image passes the rules a request passes; each refusal is the image\'s, naming the field and the value', () => {
  assert.equal(refusal({}), null, 'ordinary values, an empty argument after the program, an empty value');
  const cases: Array<[Partial<ImageValuesUsed>, RegExp]> = [
    [{ entrypoint: [''] }, /its config's Entrypoint names no program \(its first item is empty\)/],
    [{ entrypoint: [], cmd: ['', 'x'] }, /its config's Cmd names no program/],
    [{ cmd: ['a\0b'] }, /its config's Cmd item 0 contains a NUL byte/],
    [{ entrypoint: ['/e', '\ud800'] }, /its config's Entrypoint item 1 is not well-formed Unicode/],
    [{ env: ['PATH=/bin', 'A'] }, /its config's Env item 1 "A" is not NAME=value/],
    [{ env: ['=x'] }, /its config's Env item 0 "=x" is not NAME=value/],
    [{ env: ['A=\0'] }, /its config's Env item 0 "A=\\u0000" contains a NUL byte/],
    [{ workingDir: '/x\0y' }, /its config's WorkingDir "\/x\\u0000y" contains a NUL byte/],
    [{ workingDir: '/proc/self' }, /its config's WorkingDir "\/proc\/self" is inside \/proc/],
    [{ workingDir: '/a'.repeat(2100) }, /its config's WorkingDir "\/a\/a.*…" is longer than 4095 bytes/],
  ];
  for (const [used, expected] of cases) {
    const message = refusal(used);
    assert.match(message ?? 'passed', expected, JSON.stringify(used).slice(0, 80));
    assert.match(message!, /^image reg\/img:1 is invalid: .*; a job's request can replace it/);
  }
});

test('a workdir is inside /proc only when it is /proc or below it, its . and .. resolved: a directory named proc elsewhere is fine', () => {
  for (const dir of ['/proc', '/proc/', '/proc/self', '/a/../proc/1', '//proc', '/./proc/x', 'proc', '/../proc']) assert.ok(isInsideProc(dir), dir);
  for (const dir of ['/usr/src/proc', '/tmp/proc/x', '/procfs', '/proc2', '/a/proc/..', '/']) assert.ok(!isInsideProc(dir), dir);
  assert.equal(refusal({ workingDir: '/usr/src/proc' }), null, 'an image whose WORKDIR is /usr/src/proc runs');
});

test('a request whose program is empty is refused as the request\'s, naming the field', () => {
  checkProgram(['/bin/true'], 'command');
  for (const from of ['command', 'entrypoint'] as const) {
    assert.throws(() => checkProgram(['', 'x'], from), (e: unknown) => {
      assert.ok(e instanceof SbxError && e.code === 'invalid_request');
      assert.equal(e.message, `the first item of ${from} (the program to run) is empty`);
      assert.deepEqual(e.details.map((d) => d.path), [from]);
      return true;
    });
  }
});
