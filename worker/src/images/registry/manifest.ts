/**
 * Parsing and validation of manifests, indexes and image configs (OCI image spec and Docker schema
 * 2), and platform selection from an index. Everything here is pure: bytes in, typed values out.
 */
import { MAX_IMAGE_LAYERS } from '../../../../core/src/launch-bounds.ts';
import { z } from 'zod';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { CONFIG_TYPES, INDEX_TYPES, MANIFEST_TYPES, layerCompression } from './media-types.ts';

export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

const platformSchema = z.object({
  os: z.string(),
  architecture: z.string(),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
});

const descriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest: z.string().regex(DIGEST_PATTERN, 'must be sha256: followed by 64 lowercase hex digits'),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  platform: platformSchema.optional(),
});

const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
});

const manifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
});

const stringList = z.array(z.string()).nullish();

const configSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  config: z
    .object({
      Env: stringList,
      Entrypoint: stringList,
      Cmd: stringList,
      WorkingDir: z.string().nullish(),
      User: z.string().nullish(),
    })
    .nullish(),
  rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(z.string().regex(DIGEST_PATTERN)) }),
});

export type Platform = z.infer<typeof platformSchema>;
export type Descriptor = z.infer<typeof descriptorSchema>;
export type ImageConfigDocument = z.infer<typeof configSchema>;

export type ManifestDocument =
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] }
  | { kind: 'manifest'; mediaType: string; config: Descriptor; layers: Descriptor[] };

function parseJson(reference: string, what: string, bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new InvalidImageError(reference, `its ${what} is not valid JSON`, e);
  }
}

/** What the document holds at `at` (undefined where a step is missing). */
function valueAt(json: unknown, at: readonly PropertyKey[]): unknown {
  let v = json;
  for (const key of at) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function schemaError(reference: string, what: string, json: unknown, error: z.ZodError): InvalidImageError {
  const issue = error.issues[0];
  const where = issue ? issue.path.join('.') || '(root)' : '(root)';
  // A required field that is absent reads as such, not as zod's "expected object, received undefined".
  if (issue?.code === 'invalid_type' && issue.path.length > 0 && valueAt(json, issue.path) === undefined) {
    const expected = /^[aeiou]/.test(issue.expected) ? `an ${issue.expected}` : `a ${issue.expected}`;
    return new InvalidImageError(reference, `its ${what} is incomplete: ${where} is missing (it must be ${expected})`, error);
  }
  return new InvalidImageError(reference, `its ${what} is malformed at ${where}: ${issue?.message ?? 'invalid'}`, error);
}

/** The media type of a manifest document: its own mediaType field, else the Content-Type, else its shape. */
function documentType(json: unknown, contentType: string | undefined): string {
  const own = typeof json === 'object' && json !== null ? (json as { mediaType?: unknown }).mediaType : undefined;
  if (typeof own === 'string' && own !== '') return own;
  const header = contentType?.split(';')[0]?.trim();
  if (header && (INDEX_TYPES.has(header) || MANIFEST_TYPES.has(header))) return header;
  const hasManifests = typeof json === 'object' && json !== null && 'manifests' in json;
  return hasManifests ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
}

export function parseManifestDocument(reference: string, bytes: Buffer, contentType?: string): ManifestDocument {
  const json = parseJson(reference, 'manifest', bytes);
  const mediaType = documentType(json, contentType);
  if (INDEX_TYPES.has(mediaType)) {
    const parsed = indexSchema.safeParse(json);
    if (!parsed.success) throw schemaError(reference, 'index', json, parsed.error);
    return { kind: 'index', mediaType, manifests: parsed.data.manifests };
  }
  if (!MANIFEST_TYPES.has(mediaType)) {
    throw new InvalidImageError(reference, `manifest media type ${JSON.stringify(mediaType)} is not supported (schema 1 and artifacts are not container images)`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw schemaError(reference, 'manifest', json, parsed.error);
  const { config, layers } = parsed.data;
  if (!CONFIG_TYPES.has(config.mediaType)) {
    throw new InvalidImageError(reference, `config media type ${JSON.stringify(config.mediaType)} is not a container image config`);
  }
  if (layers.length > MAX_IMAGE_LAYERS) {
    throw new InvalidImageError(reference, `it has ${layers.length} layers; sbx runs images of at most ${MAX_IMAGE_LAYERS}`);
  }
  for (const layer of layers) {
    if (layerCompression(layer.mediaType) === null) {
      throw new InvalidImageError(reference, `layer ${layer.digest} has unsupported media type ${JSON.stringify(layer.mediaType)}`);
    }
  }
  return { kind: 'manifest', mediaType, config, layers };
}

export function parseImageConfig(reference: string, bytes: Buffer, layerCount: number): ImageConfigDocument {
  const json = parseJson(reference, 'config', bytes);
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) throw schemaError(reference, 'config', json, parsed.error);
  if (parsed.data.rootfs.diff_ids.length !== layerCount) {
    throw new InvalidImageError(reference, `its config lists ${parsed.data.rootfs.diff_ids.length} diff_ids for ${layerCount} layers`);
  }
  return parsed.data;
}

const NODE_ARCH: Record<string, Platform> = {
  x64: { os: 'linux', architecture: 'amd64' },
  arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
  ia32: { os: 'linux', architecture: '386' },
  ppc64: { os: 'linux', architecture: 'ppc64le' },
  s390x: { os: 'linux', architecture: 's390x' },
  riscv64: { os: 'linux', architecture: 'riscv64' },
};

export function hostPlatform(): Platform {
  return NODE_ARCH[process.arch] ?? { os: 'linux', architecture: process.arch };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** arm64's only variant is v8, so a missing variant means the same thing. */
function variantMatches(want: string | undefined, have: string | undefined, architecture: string): boolean {
  if (want === undefined || want === have) return true;
  return architecture === 'arm64' && want === 'v8' && have === undefined;
}

/** The index entry for `want`, preferring an exact variant; InvalidImageError listing what exists otherwise. */
export function selectPlatform(reference: string, manifests: Descriptor[], want: Platform): Descriptor {
  const candidates = manifests.filter(
    (m) => m.platform !== undefined && m.platform.os === want.os && m.platform.architecture === want.architecture && MANIFEST_TYPES.has(m.mediaType),
  );
  const exact = candidates.find((m) => m.platform?.variant === want.variant);
  const compatible = exact ?? candidates.find((m) => variantMatches(want.variant, m.platform?.variant, want.architecture));
  if (compatible) return compatible;
  const available = manifests
    .map((m) => (m.platform ? formatPlatform(m.platform) : null))
    .filter((p): p is string => p !== null && !p.includes('unknown'));
  throw new InvalidImageError(reference, `it has no manifest for ${formatPlatform(want)} (available: ${available.length ? available.join(', ') : 'none'})`);
}
