/**
 * The launcher's reading of sbx-init's output-file records (output-files.ts). sbx-init runs inside
 * the job, so its records are read as a job could have written them: every length checked, and no
 * more records than sbx-init writes (output_files.h: kMaxFiles files, one more per pattern).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_RECORDS, parseOutputFiles } from '../output-files.js';

function record(path: string, data = ''): Buffer {
  const header = Buffer.alloc(32);
  header.writeUInt32LE(0x53424f31, 0);
  header.writeUInt32LE(Buffer.byteLength(path), 4);
  header.writeBigUInt64LE(BigInt(data.length), 16);
  header.writeBigUInt64LE(BigInt(data.length), 24);
  return Buffer.concat([header, Buffer.from(path), Buffer.from(data)]);
}

test('as many records as sbx-init can write are read; one more and none is reported', () => {
  const most = Buffer.concat(Array.from({ length: MAX_RECORDS }, (_, i) => record(`out/${i}.txt`, 'x')));
  const files = parseOutputFiles(most);
  assert.equal(files.length, MAX_RECORDS);
  assert.deepEqual({ path: files[7]!.path, data: files[7]!.data.toString(), size: files[7]!.size }, { path: 'out/7.txt', data: 'x', size: 1 });
  // Forged: 140,000 empty records fit in the memfd's size bound (before: each was listed in the job's document).
  assert.throws(() => parseOutputFiles(Buffer.concat([most, record('')])), /more than 1032 records/);
  assert.throws(() => parseOutputFiles(Buffer.concat(Array.from({ length: 140_000 }, () => record('')))), /more than 1032 records/);
});

test('a record running past the end of the buffer is refused', () => {
  const whole = record('report.xml', '<ok/>');
  assert.throws(() => parseOutputFiles(whole.subarray(0, whole.length - 1)), /runs past the end/);
  assert.throws(() => parseOutputFiles(Buffer.concat([whole, Buffer.alloc(8)])), /bad record/);
});
