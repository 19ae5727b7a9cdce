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
const IPV6_HOST = /^\[[A-Fa-f0-9:.]+(?:%[A-Za-z0-9]+)?\]$/;
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

function checkRegistry(input: string, registry: string): void {
  let host = registry;
  let port: string | null = null;
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    host = end === -1 ? registry : registry.slice(0, end + 1);
    const rest = end === -1 ? '' : registry.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw invalid(input, `registry ${JSON.stringify(registry)} is not host[:port]`);
      port = rest.slice(1);
    }
    if (!IPV6_HOST.test(host)) throw invalid(input, `registry ${JSON.stringify(registry)} is not a valid IPv6 address in brackets`);
  } else {
    const colon = registry.lastIndexOf(':');
    if (colon !== -1) {
      host = registry.slice(0, colon);
      port = registry.slice(colon + 1);
    }
    const labels = host.split('.');
    if (host === '' || !labels.every((l) => HOST_LABEL.test(l))) {
      throw invalid(input, `registry host ${JSON.stringify(host)} is not a valid host name or address`);
    }
  }
  if (port !== null && (!PORT.test(port) || Number(port) < 1 || Number(port) > 65535)) {
    throw invalid(input, `registry port ${JSON.stringify(port)} must be a number from 1 to 65535`);
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

/** Splits `[registry/]path` into the registry and the repository, applying Docker Hub defaults. */
function splitRegistry(name: string): { registry: string; repository: string } {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (slash !== -1 && looksLikeRegistry(first)) {
    const registry = DOCKER_HUB_ALIASES.has(first) ? DEFAULT_REGISTRY : first;
    const path = name.slice(slash + 1);
    const repository = registry === DEFAULT_REGISTRY && !path.includes('/') ? `library/${path}` : path;
    return { registry, repository };
  }
  return { registry: DEFAULT_REGISTRY, repository: name.includes('/') ? name : `library/${name}` };
}

export function parseImageReference(input: string): ImageReference {
  if (typeof input !== 'string' || input.length === 0) throw invalid(String(input), 'must not be empty');
  if (input.length > MAX_INPUT_LENGTH) throw invalid(input.slice(0, 64) + '…', `is longer than ${MAX_INPUT_LENGTH} characters`);
  if (/[\s\u0000-\u001f\u007f]/.test(input)) throw invalid(input, 'must not contain whitespace or control characters');

  // The registry part may contain ':' (port) so split it off before looking for a tag.
  const { name: nameWithRegistry, tag, digest } = splitNameTagDigest(input);
  if (nameWithRegistry === '') throw invalid(input, 'has no repository name');
  const { registry, repository } = splitRegistry(nameWithRegistry);
  checkRegistry(input, registry);
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
