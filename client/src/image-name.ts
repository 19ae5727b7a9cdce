/**
 * Docker's normalisation of an image name, as far as `sbx rmi busybox` needs it to match the
 * canonical references the API lists (`busybox` → `docker.io/library/busybox:latest`).
 */
export function normalizeImageName(ref: string): string {
  const at = ref.indexOf('@');
  const [name, digest] = at >= 0 ? [ref.slice(0, at), ref.slice(at)] : [ref, ''];
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const hasRegistry = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  let full = hasRegistry ? name : `docker.io/${slash < 0 ? `library/${name}` : name}`;
  const lastPart = full.slice(full.lastIndexOf('/') + 1);
  if (!digest && !lastPart.includes(':')) full += ':latest';
  return full + digest;
}

export const isDigest = (s: string): boolean => /^sha256:[a-f0-9]{64}$/.test(s);
