/**
 * Docker-style image reference parsing (pure; shared by the API's request validation and the
 * worker's image store). Follows `docker pull` rules: the registry defaults to docker.io, a one-part
 * Docker Hub name gets `library/`, the tag defaults to `latest` unless a digest is given.
 */
import { SbxError } from './errors.ts';

export interface ImageReference {
  /** e.g. 'docker.io', '127.0.0.1:5000', '[::1]:5000', 'ghcr.io' */
  registry: string;
  /** e.g. 'library/busybox' */
  repository: string;
  tag: string | null;
  digest: string | null;
  /** 'registry/repository:tag', or 'registry/repository@digest' when a digest is given (the digest wins). */
  canonical: string;
}

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
const MAX_INPUT_LENGTH = 1024;
const MAX_REPOSITORY_LENGTH = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST_LABEL = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const IPV6_HOST = /^\[[A-Fa-f0-9:.]+\]$/;
const PORT = /^[0-9]{1,5}$/;
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

function invalid(input: string, what: string): SbxError {
  const message = `image reference ${JSON.stringify(input)}: ${what}`;
  return new SbxError('invalid_request', message, { details: [{ path: 'image', message }] });
}

/** Whether the first path part names a registry host rather than a Docker Hub namespace. */
function looksLikeRegistry(part: string): boolean {
  // Docker also treats an uppercase first part as a host; we don't, so `MyOrg/app` gets a clear
  // "must be lowercase" error instead of a connection failure to a host named MyOrg.
  return part.includes('.') || part.includes(':') || part === 'localhost' || part.startsWith('[');
}

/**
 * A registry (`host[:port]`) as URLs spell it, or what is wrong with it. The worker reaches a
 * registry by URL, so a host the URL parser refuses (`1.2.3.256`, `[1.2.3.4]`, `xn--a.com`, an IPv6
 * zone id) is refused here, not at the pull; and a host it accepts is kept in its spelling (`127.1`
 * is `127.0.0.1`, `0x7f.1` too, `Ghcr.IO` is `ghcr.io`, `[0::1]` is `[::1]`), so one registry is one
 * cache entry and one name for SBX_INSECURE_REGISTRIES, mirrors and credentials.
 */
function spellRegistry(registry: string): { registry: string } | { problem: string } {
  let host = registry;
  let port: string | null = null;
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    host = end === -1 ? registry : registry.slice(0, end + 1);
    const rest = end === -1 ? '' : registry.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return { problem: `registry ${JSON.stringify(registry)} is not host[:port]` };
      port = rest.slice(1);
    }
    if (!IPV6_HOST.test(host)) return { problem: `registry ${JSON.stringify(registry)} is not a valid IPv6 address in brackets` };
  } else {
    const colon = registry.lastIndexOf(':');
    if (colon !== -1) {
      host = registry.slice(0, colon);
      port = registry.slice(colon + 1);
    }
  }
  const spelled = registry.startsWith('[') || (host !== '' && host.split('.').every((l) => HOST_LABEL.test(l))) ? urlHostname(host) : null;
  if (spelled === null) return { problem: `registry host ${JSON.stringify(host)} is not a valid host name or address` };
  if (port !== null && (!PORT.test(port) || Number(port) < 1 || Number(port) > 65535)) {
    return { problem: `registry port ${JSON.stringify(port)} must be a number from 1 to 65535` };
  }
  return { registry: port === null ? spelled : `${spelled}:${port}` };
}

/** A registry named in configuration, spelt as image references spell it (Docker Hub's aliases are docker.io). */
export function registryName(text: string): { registry: string } | { problem: string } {
  const spelled = spellRegistry(text);
  if ('problem' in spelled || !DOCKER_HUB_ALIASES.has(spelled.registry)) return spelled;
  return { registry: DEFAULT_REGISTRY };
}

function checkRegistry(input: string, registry: string): string {
  const spelled = spellRegistry(registry);
  if ('problem' in spelled) throw invalid(input, spelled.problem);
  return spelled.registry;
}

/** `host` as a URL's hostname, or null when no URL can name it. */
function urlHostname(host: string): string | null {
  try {
    return new URL(`https://${host}/`).hostname;
  } catch {
    return null;
  }
}

function checkRepository(input: string, repository: string): void {
  if (repository.length > MAX_REPOSITORY_LENGTH) {
    throw invalid(input, `repository name is longer than ${MAX_REPOSITORY_LENGTH} characters`);
  }
  for (const component of repository.split('/')) {
    if (component === '') throw invalid(input, 'repository name has an empty path component');
    if (!PATH_COMPONENT.test(component)) {
      const hint = component !== component.toLowerCase() ? ' (must be lowercase)' : '';
      throw invalid(
        input,
        `repository path component ${JSON.stringify(component)} is invalid${hint}: use lowercase letters, digits and single separators . _ __ -`,
      );
    }
  }
}

/** Splits `name[:tag][@digest]` into its parts, without validating them. */
function splitNameTagDigest(rest: string): { name: string; tag: string | null; digest: string | null } {
  let name = rest;
  let digest: string | null = null;
  const at = name.indexOf('@');
  if (at !== -1) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
  }
  let tag: string | null = null;
  const lastSlash = name.lastIndexOf('/');
  const colon = name.indexOf(':', lastSlash + 1);
  if (colon !== -1) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  return { name, tag, digest };
}

/** Splits `[registry/]path` into the registry (as written) and the path; null registry for Docker Hub. */
function splitRegistry(name: string): { registry: string | null; path: string } {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (slash !== -1 && looksLikeRegistry(first)) return { registry: first, path: name.slice(slash + 1) };
  return { registry: null, path: name };
}

/** Docker Hub's defaults: its aliases are docker.io, and a one-part name there is under `library/`. */
function dockerHubDefaults(registry: string | null, path: string): { registry: string; repository: string } {
  if (registry !== null && !DOCKER_HUB_ALIASES.has(registry)) return { registry, repository: path };
  return { registry: DEFAULT_REGISTRY, repository: path.includes('/') ? path : `library/${path}` };
}

export function parseImageReference(input: string): ImageReference {
  if (typeof input !== 'string' || input.length === 0) throw invalid(String(input), 'must not be empty');
  if (input.length > MAX_INPUT_LENGTH) throw invalid(input.slice(0, 64) + '…', `is longer than ${MAX_INPUT_LENGTH} characters`);
  if (/[\s\u0000-\u001f\u007f]/.test(input)) throw invalid(input, 'must not contain whitespace or control characters');

  // The registry part may contain ':' (port) so split it off before looking for a tag.
  const { name: nameWithRegistry, tag, digest } = splitNameTagDigest(input);
  if (nameWithRegistry === '') throw invalid(input, 'has no repository name');
  const written = splitRegistry(nameWithRegistry);
  const { registry, repository } = dockerHubDefaults(written.registry === null ? null : checkRegistry(input, written.registry), written.path);
  checkRepository(input, repository);
  if (tag !== null && !TAG.test(tag)) {
    throw invalid(input, `tag ${JSON.stringify(tag)} is invalid: use up to 128 letters, digits, _ . - (not starting with . or -)`);
  }
  if (digest !== null && !DIGEST.test(digest)) {
    throw invalid(input, `digest ${JSON.stringify(digest)} is invalid: expected sha256: followed by 64 lowercase hex digits`);
  }
  const effectiveTag = tag ?? (digest === null ? DEFAULT_TAG : null);
  const base = `${registry}/${repository}`;
  const canonical = digest !== null ? `${base}@${digest}` : `${base}:${effectiveTag}`;
  return { registry, repository, tag: effectiveTag, digest, canonical };
}

/** The string to ask the registry for: the digest when there is one, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
