/**
 * Receipt public keys as held apart from the signer: PEM blocks of Ed25519 SPKI public keys, one
 * after another (the current key and retired ones), as the API's SBX_RECEIPT_PUBLIC_KEYS_FILE and
 * `sbx verify --key` read them. A private key in such a file is refused: whoever holds the file
 * should not be able to sign. A key's id (`receiptKeyId`) is what a receipt names its key by.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

export type PublicKeysParse = { ok: true; keys: KeyObject[] } | { ok: false; problems: string[] };

export function parseReceiptPublicKeys(text: string): PublicKeysParse {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return { ok: false, problems: ['holds a private key: give only public keys (openssl pkey -in receipt.pem -pubout)'] };
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0) return { ok: false, problems: ['holds no public key in PEM (openssl pkey -in receipt.pem -pubout)'] };
  const keys: KeyObject[] = [];
  const problems: string[] = [];
  blocks.forEach((block, i) => {
    let key: KeyObject;
    try {
      key = createPublicKey(block);
    } catch {
      return void problems.push(`key ${i + 1} is not a public key in PEM`);
    }
    if (key.asymmetricKeyType !== 'ed25519') return void problems.push(`key ${i + 1} is a ${key.asymmetricKeyType} key; receipts are signed with Ed25519`);
    keys.push(key);
  });
  return problems.length ? { ok: false, problems } : { ok: true, keys };
}

/** A key's id: the first 16 hex digits of the SHA-256 of its public key (SPKI DER). */
export function receiptKeyId(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}
