// The seccomp allow-list (P22): native/src/seccomp_allow.inc is exactly what its committed
// generator makes of native/tools/seccomp-allow.list, and the generator refuses names that are no
// syscall. No root, no build needed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AllowListError, generate, INC_FILE, knownSyscalls, LIST_FILE, parseList } from '../tools/gen-seccomp-allow.ts';

const listText = fs.readFileSync(LIST_FILE, 'utf8');

describe('seccomp allow-list generator', () => {
  it('regenerating seccomp_allow.inc from the list gives exactly the committed file', () => {
    const committed = fs.readFileSync(INC_FILE, 'utf8');
    const generated = generate(listText);
    const firstDiff = [...generated].findIndex((c, i) => c !== committed[i]);
    assert.ok(generated === committed,
      `${path.relative(process.cwd(), INC_FILE)} differs from what the list generates (first at char ${firstDiff}): ` +
      'run `npx tsx native/tools/gen-seccomp-allow.ts`, never edit the .inc by hand');
  });

  it('a different list gives a different file (the comparison above can fail)', () => {
    const without = listText.split('\n').filter((l) => l !== 'accept').join('\n');
    assert.notEqual(generate(without), generate(listText));
    assert.doesNotMatch(generate(without), /__NR_accept,/);
  });

  it('refuses a name no syscall table knows, unless its line says why it is there', () => {
    assert.ok(knownSyscalls().has('openat'), 'no syscall table read (linux-libc-dev headers)');
    assert.throws(() => generate(`${listText}opnat\n`), (e: unknown) => e instanceof AllowListError && /opnat/.test(e.message));
    assert.match(generate(`${listText}opnat  # a name from some future kernel\n`), /#ifdef __NR_opnat\n {2}__NR_opnat,\n#endif\n$/);
    assert.throws(() => generate(`${listText}accept\n`), /listed twice/);
  });

  it('every syscall seccomp.cc allows by number (newer than the headers) is in the list', () => {
    const src = fs.readFileSync(path.join(path.dirname(INC_FILE), 'seccomp.cc'), 'utf8');
    const late = [...src.matchAll(/\{(\d+)\} \/\*([a-z0-9_]+)\*\//g)].map((m) => m[2]!);
    assert.ok(late.length >= 10, `kLateAllowed not found in seccomp.cc (${late.length} entries)`);
    const names = new Set(parseList(listText).map((e) => e.name));
    assert.deepEqual(late.filter((n) => !names.has(n)), [], 'allowed by number in seccomp.cc but not in the list');
  });
});
