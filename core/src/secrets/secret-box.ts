/**
 * Secrets at rest in Redis: AES-256-GCM with a key from SBX_SECRETS_KEY (32 bytes, base64 or hex),
 * shared by the API (seals) and the workers (open). Each sealed value is bound to what it belongs
 * to (`context`, e.g. the job id, as GCM additional data), so it cannot be moved to another record;
 * any change to it, or the wrong key, makes open() throw: it fails closed, never returns garbage.
 *
 * Format: `v1.<iv>.<ciphertext>.<tag>`, each base64url; a fresh random 96-bit IV per value.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const SECRETS_KEY_BYTES = 32;

/** The key from its text form: 64 hex digits, or base64 / base64url of 32 bytes. Throws saying what is wrong. */
export function parseSecretsKey(text: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length === SECRETS_KEY_BYTES) return key;
  }
  throw new Error('must be 32 random bytes as 64 hex digits or 44 base64 characters (e.g. `openssl rand -base64 32`)');
}

export class SecretUnsealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretUnsealError';
  }
}

export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== SECRETS_KEY_BYTES) throw new RangeError(`the key must be ${SECRETS_KEY_BYTES} bytes`);
    this.key = Buffer.from(key);
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv, body, cipher.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  /** The plaintext; throws SecretUnsealError if `sealed` was altered, sealed for another context or with another key. */
  open(sealed: string, context: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION) throw new SecretUnsealError('not a sealed value of a known version');
    const [iv, body, tag] = parts.slice(1).map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer];
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new SecretUnsealError('malformed sealed value');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretUnsealError('the sealed value does not authenticate (altered, moved from another record, or another key)');
    }
  }
}

/** The box for SBX_SECRETS_KEY (validated by config), or null when none is configured. */
export function secretBoxFromEnv(env: { SBX_SECRETS_KEY?: string | undefined }): SecretBox | null {
  return env.SBX_SECRETS_KEY ? new SecretBox(parseSecretsKey(env.SBX_SECRETS_KEY)) : null;
}
