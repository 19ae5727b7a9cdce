import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32, as ULID

/** A new job id: `j_` + a ULID (48-bit ms time + 80 random bits), sortable by creation time. */
export function newJobId(now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const rnd = randomBytes(16);
  let rand = '';
  for (let i = 0; i < 16; i++) rand += ALPHABET[rnd[i]! & 31];
  return `j_${time}${rand}`;
}

export const JOB_ID_PATTERN = /^j_[0-9A-HJKMNP-TV-Z]{26}$/;

export function isJobId(s: string): boolean {
  return JOB_ID_PATTERN.test(s);
}
