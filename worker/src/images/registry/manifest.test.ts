import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidImageError } from '../../../../core/src/errors.ts';
import { parseImageConfig, parseManifestDocument, selectPlatform, type Descriptor } from './manifest.ts';

const d = (n: string, platform?: Descriptor['platform'], mediaType = 'application/vnd.oci.image.manifest.v1+json'): Descriptor => ({
  mediaType,
  digest: 'sha256:' + n.repeat(64),
  size: 1,
  ...(platform ? { platform } : {}),
});

test('selectPlatform prefers the exact variant and tolerates arm64 without one', () => {
  const list = [d('a', { os: 'linux', architecture: 'arm', variant: 'v6' }), d('b', { os: 'linux', architecture: 'arm', variant: 'v7' }), d('c', { os: 'linux', architecture: 'arm64' }), d('e', { os: 'linux', architecture: 'amd64' })];
  assert.equal(selectPlatform('r', list, { os: 'linux', architecture: 'arm', variant: 'v7' }).digest, list[1]!.digest);
  assert.equal(selectPlatform('r', list, { os: 'linux', architecture: 'arm64', variant: 'v8' }).digest, list[2]!.digest);
  assert.equal(selectPlatform('r', list, { os: 'linux', architecture: 'amd64' }).digest, list[3]!.digest);
  assert.throws(() => selectPlatform('r', list, { os: 'windows', architecture: 'amd64' }), /no manifest for windows\/amd64 \(available: linux\/arm\/v6, linux\/arm\/v7, linux\/arm64, linux\/amd64\)/);
  assert.throws(() => selectPlatform('r', [d('f', { os: 'unknown', architecture: 'unknown' })], { os: 'linux', architecture: 'amd64' }), /available: none/);
});

test('parseManifestDocument rejects what is not a container image', () => {
  const reject = (json: unknown, re: RegExp, contentType?: string) =>
    assert.throws(() => parseManifestDocument('img', Buffer.from(typeof json === 'string' ? json : JSON.stringify(json)), contentType), (e: unknown) => e instanceof InvalidImageError && re.test(e.message));
  reject('{', /not valid JSON/);
  reject({ schemaVersion: 1, name: 'x', fsLayers: [] }, /media type|schemaVersion/, 'application/vnd.docker.distribution.manifest.v1+prettyjws');
  reject({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: d('a', undefined, 'application/vnd.cncf.helm.config.v1+json'), layers: [] }, /not a container image config/);
  reject({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: d('a', undefined, 'application/vnd.oci.image.config.v1+json'), layers: [d('b', undefined, 'application/x-foo')] }, /unsupported media type/);
  reject({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { ...d('a', undefined, 'application/vnd.oci.image.config.v1+json'), digest: 'sha512:ab' }, layers: [] }, /config\.digest/);
  const ok = parseManifestDocument('img', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [d('a', { os: 'linux', architecture: 'amd64' })] })));
  assert.equal(ok.kind, 'index');
});

test('a required field the document lacks is named as missing; a present one of the wrong type as malformed', () => {
  const message = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof InvalidImageError);
      return e.message;
    }
    assert.fail('not refused');
  };
  const manifest = (o: Record<string, unknown>) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', ...o }));
  const config = d('a', undefined, 'application/vnd.oci.image.config.v1+json');
  assert.match(message(() => parseManifestDocument('img', manifest({ layers: [] }))), /its manifest is incomplete: config is missing \(it must be an object\)$/);
  assert.match(message(() => parseManifestDocument('img', manifest({ config }))), /its manifest is incomplete: layers is missing \(it must be an array\)$/);
  assert.match(message(() => parseManifestDocument('img', manifest({ config: { mediaType: config.mediaType, size: 1 }, layers: [] }))), /incomplete: config\.digest is missing \(it must be a string\)$/);
  assert.match(message(() => parseManifestDocument('img', manifest({ config: null, layers: [] }))), /its manifest is malformed at config: .*received null/);
  assert.match(message(() => parseImageConfig('img', Buffer.from('{"config":{}}'), 0)), /its config is incomplete: rootfs is missing \(it must be an object\)$/);
  assert.match(message(() => parseImageConfig('img', Buffer.from('{"rootfs":{"type":"layers","diff_ids":7}}'), 0)), /its config is malformed at rootfs\.diff_ids: .*received number/);
});
