/**
 * Recognises TLS failures among transport errors and says what they mean. They are not retried: a
 * certificate that is not trusted, not valid for the name, or refused does not fix itself.
 * Handshake timeouts and resets are not in here (those may be transient).
 */

/** OpenSSL's certificate verification results (as Node reports them in `code`). */
const UNKNOWN_AUTHORITY = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'INVALID_CA',
]);
const EXPIRY = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD']);
const OTHER_VERIFY = new Set([
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);
const NAME_MISMATCH = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_TLS_CERT_ALTNAME_FORMAT']);
/** OpenSSL errors of a peer that does not speak TLS at all (typically plain http). */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_RECORD_LAYER_FAILURE']);

interface TlsErrorLike {
  code?: string;
  message?: string;
  reason?: string;
}

function tlsCode(e: unknown): string | undefined {
  const err = e as TlsErrorLike & { cause?: TlsErrorLike };
  const code = err?.code ?? err?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Whether `e` (or its cause) is a TLS failure that retrying will not cure. */
export function isTlsFailure(e: unknown): boolean {
  const code = tlsCode(e);
  if (code === undefined) return false;
  return UNKNOWN_AUTHORITY.has(code) || EXPIRY.has(code) || OTHER_VERIFY.has(code) || NAME_MISMATCH.has(code) || code.startsWith('ERR_SSL_');
}

/** The OpenSSL reason without its "80AC…:error:0A000412:SSL routines:…" decoration. */
function shortReason(e: TlsErrorLike): string {
  if (e.reason) return e.reason.replace(/[:\s]+$/, '');
  const message = e.message ?? '';
  const ssl = /:SSL routines:[^:]*:([^:]+)/.exec(message);
  return (ssl?.[1] ?? message).replace(/[:\s]+$/, '').trim();
}

/**
 * What a TLS failure talking to `host` means and what to do, e.g. "certificate signed by unknown
 * authority (UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate); trust its CA
 * with a .crt file in the certs.d entry for 127.0.0.1:5000". Null when `e` is no TLS failure.
 */
export function describeTlsFailure(e: unknown, host: string): string | null {
  if (!isTlsFailure(e)) return null;
  const code = tlsCode(e)!;
  const err = e as TlsErrorLike & { cause?: TlsErrorLike };
  const source = err.code === code ? err : (err.cause ?? err);
  const raw = `(${code}: ${shortReason(source)})`;
  const entry = `the certs.d entry for ${host}`;
  if (UNKNOWN_AUTHORITY.has(code)) {
    if (code === 'DEPTH_ZERO_SELF_SIGNED_CERT') return `self-signed certificate is not trusted ${raw}; trust that certificate with a .crt file in ${entry}`;
    return `certificate signed by unknown authority ${raw}; trust its CA with a .crt file in ${entry}`;
  }
  if (EXPIRY.has(code)) return `certificate has expired or is not yet valid ${raw}; renew the registry's certificate (or check this host's clock)`;
  if (NAME_MISMATCH.has(code)) return `certificate is not valid for ${host} ${raw}; reach the registry by a name its certificate lists`;
  if (OTHER_VERIFY.has(code)) return `certificate rejected ${raw}`;
  if (NOT_TLS.has(code)) return `the server does not speak TLS ${raw}; if it serves plain http, remove ${entry} and list it as an insecure registry`;
  if (/ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED|HANDSHAKE_FAILURE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED)/.test(code)) {
    return `the server refused the TLS handshake ${raw}; it may require a client certificate it trusts: a <name>.cert and <name>.key pair in ${entry}`;
  }
  return `TLS handshake failed ${raw}`;
}
