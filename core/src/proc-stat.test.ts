import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { procStatFields } from './proc-stat.ts';

describe('procStatFields', () => {
  it('numbers the fields as proc(5) does, whatever the command name holds', () => {
    const field = procStatFields('42 (a) 2 (b) S 7 42 42 0 -1 4194560 0 0 0 0 11 12 0 0 20 5 1 0 99\n');
    assert.deepEqual([field(3), field(4), field(14), field(15), field(19), field(22)], ['S', '7', '11', '12', '5', '99']);
    assert.equal(field(2), undefined, 'the name itself is not a field here');
    assert.equal(field(60), undefined);
  });

  it('reads this process: its parent and its start time', () => {
    const field = procStatFields(readFileSync('/proc/self/stat', 'utf8'));
    assert.equal(Number(field(4)), process.ppid);
    assert.ok(Number(field(22)) > 0);
  });
});
