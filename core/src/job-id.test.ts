import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isJobId, jobIdTime, newJobId } from './job-id.ts';

test('job ids: ULID-shaped, unique across many pool refills, ordered by creation time', () => {
  const n = 5000; // 16 random bytes each: 19 refills of the 4 KiB pool
  const ids = new Set<string>();
  const randoms = new Set<string>();
  for (let i = 0; i < n; i++) {
    const id = newJobId(1_700_000_000_000);
    assert.ok(isJobId(id), id);
    ids.add(id);
    randoms.add(id.slice(12));
  }
  assert.equal(ids.size, n, 'no id repeats');
  assert.equal(randoms.size, n, 'no random part repeats (each pool byte is used once)');
  const earlier = newJobId(1_700_000_000_000);
  const later = newJobId(1_700_000_000_001);
  assert.ok(earlier < later, `${earlier} sorts before ${later}`);
  assert.equal(isJobId('j_01ARZ3NDEKTSV4RRFFQ69G5FAV'), true);
  assert.equal(isJobId('j_01ARZ3NDEKTSV4RRFFQ69G5FAU'), false, 'U is not Crockford base32');
  assert.equal(jobIdTime(newJobId(1_700_000_000_123)), 1_700_000_000_123, 'the time an id was made is read back from it');
  assert.ok(Number.isNaN(jobIdTime('not-a-job')));
});
