/**
 * The files a job's sbx-init collected after its command (native/src/output_files.h): the records
 * of its memfd, parsed with every length checked against the buffer.
 */
import { errnoName } from './errno-name.js';

export interface OutputFile {
  /** The path that matched (relative patterns give paths relative to the workdir), or the pattern itself when it matched nothing. */
  path: string;
  /** The file's size as it was read (bytes). */
  size: number;
  /** What was kept of it: all of it, or with `truncated` the first bytes the budget allowed. */
  data: Buffer;
  truncated: boolean;
  /** Why nothing of it was collected: "no match", "not a regular file" (symlinks are not followed), "too many files", or the errno name of the failed read. */
  skipped?: string;
}

const MAGIC = 0x53424f31;
const HEADER = 32;
const FLAGS = { truncated: 1, noMatch: 2, notRegular: 4, unreadable: 8, tooMany: 16 } as const;
/** The most records sbx-init writes (output_files.h): kMaxFiles files, and one more per pattern (kMaxPatterns). */
export const MAX_RECORDS = 1000 + 32;

/**
 * Throws on a malformed buffer, or one with more records than sbx-init writes (sbx-init runs inside
 * the job: records a job forged would otherwise be listed, up to ~140,000 empty ones in the memfd's
 * size bound, in its document): the launcher then reports no files rather than wrong ones.
 */
export function parseOutputFiles(buf: Buffer): OutputFile[] {
  const files: OutputFile[] = [];
  for (let off = 0; off < buf.length; ) {
    if (files.length === MAX_RECORDS) throw new Error(`output files: more than ${MAX_RECORDS} records, more than sbx-init writes`);
    if (buf.length - off < HEADER || buf.readUInt32LE(off) !== MAGIC) throw new Error(`output files: bad record at ${off}`);
    const pathLen = buf.readUInt32LE(off + 4);
    const flags = buf.readUInt32LE(off + 8);
    const size = Number(buf.readBigUInt64LE(off + 16));
    const kept = Number(buf.readBigUInt64LE(off + 24));
    const start = off + HEADER;
    if (pathLen > buf.length - start || kept > buf.length - start - pathLen) throw new Error(`output files: record at ${off} runs past the end`);
    const path = buf.toString('utf8', start, start + pathLen);
    const data = buf.subarray(start + pathLen, start + pathLen + kept);
    const file: OutputFile = { path, size: flags & FLAGS.unreadable ? 0 : size, data, truncated: (flags & FLAGS.truncated) !== 0 };
    if (flags & FLAGS.noMatch) file.skipped = 'no match';
    else if (flags & FLAGS.notRegular) file.skipped = 'not a regular file';
    else if (flags & FLAGS.tooMany) file.skipped = 'too many files';
    else if (flags & FLAGS.unreadable) file.skipped = errnoName(size) ?? `errno ${size}`;
    files.push(file);
    off = start + pathLen + kept;
  }
  return files;
}
