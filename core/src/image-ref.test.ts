import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseImageReference } from './image-ref.ts';
import { SbxError } from './errors.ts';

const D = 'sha256:' + 'a'.repeat(64);

const valid: Array<[string, string, string, string | null, string | null, string]> = [
  // input, registry, repository, tag, digest, canonical
  ['busybox', 'docker.io', 'library/busybox', 'latest', null, 'docker.io/library/busybox:latest'],
  ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', null, 'docker.io/library/busybox:1.36'],
  ['library/busybox', 'docker.io', 'library/busybox', 'latest', null, 'docker.io/library/busybox:latest'],
  ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', null, 'docker.io/library/busybox:latest'],
  ['index.docker.io/library/busybox:1', 'docker.io', 'library/busybox', '1', null, 'docker.io/library/busybox:1'],
  ['bitnami/redis:7.2', 'docker.io', 'bitnami/redis', '7.2', null, 'docker.io/bitnami/redis:7.2'],
  ['ghcr.io/owner/app/sub:v1', 'ghcr.io', 'owner/app/sub', 'v1', null, 'ghcr.io/owner/app/sub:v1'],
  ['127.0.0.1:5000/demo/busybox', '127.0.0.1:5000', 'demo/busybox', 'latest', null, '127.0.0.1:5000/demo/busybox:latest'],
  ['localhost/app', 'localhost', 'app', 'latest', null, 'localhost/app:latest'],
  ['localhost:5000/app:dev', 'localhost:5000', 'app', 'dev', null, 'localhost:5000/app:dev'],
  ['[::1]:5000/demo/busybox:x', '[::1]:5000', 'demo/busybox', 'x', null, '[::1]:5000/demo/busybox:x'],
  ['[fe80::1]/a', '[fe80::1]', 'a', 'latest', null, '[fe80::1]/a:latest'],
  [`busybox@${D}`, 'docker.io', 'library/busybox', null, D, `docker.io/library/busybox@${D}`],
  [`busybox:1.36@${D}`, 'docker.io', 'library/busybox', '1.36', D, `docker.io/library/busybox@${D}`],
  [`registry.example.com:443/a/b@${D}`, 'registry.example.com:443', 'a/b', null, D, `registry.example.com:443/a/b@${D}`],
  ['a/b__c-d.e_f--g', 'docker.io', 'a/b__c-d.e_f--g', 'latest', null, 'docker.io/a/b__c-d.e_f--g:latest'],
  ['x:A_b.C-1', 'docker.io', 'library/x', 'A_b.C-1', null, 'docker.io/library/x:A_b.C-1'],
  // A registry host keeps the spelling the worker's URLs give it: one registry, one name.
  ['127.1:5000/a', '127.0.0.1:5000', 'a', 'latest', null, '127.0.0.1:5000/a:latest'],
  ['0x7f.1:5000/a', '127.0.0.1:5000', 'a', 'latest', null, '127.0.0.1:5000/a:latest'],
  ['2130706433:5000/a', '127.0.0.1:5000', 'a', 'latest', null, '127.0.0.1:5000/a:latest'],
  ['0300.0250.0.1/a', '192.168.0.1', 'a', 'latest', null, '192.168.0.1/a:latest'],
  ['[0:0::1]:5000/a', '[::1]:5000', 'a', 'latest', null, '[::1]:5000/a:latest'],
  ['[::FFFF:7F00:1]/a', '[::ffff:7f00:1]', 'a', 'latest', null, '[::ffff:7f00:1]/a:latest'],
  ['Ghcr.IO/owner/app', 'ghcr.io', 'owner/app', 'latest', null, 'ghcr.io/owner/app:latest'],
  ['Index.Docker.IO/busybox', 'docker.io', 'library/busybox', 'latest', null, 'docker.io/library/busybox:latest'],
];

for (const [input, registry, repository, tag, digest, canonical] of valid) {
  test(`parses ${input}`, () => {
    assert.deepEqual(parseImageReference(input), { registry, repository, tag, digest, canonical });
  });
}

const invalid: Array<[string, RegExp]> = [
  ['', /must not be empty/],
  ['Busybox', /"Busybox".*lowercase/],
  ['MyOrg/app', /"MyOrg".*lowercase/],
  ['busybox:', /tag ""/],
  ['busybox:-bad', /tag "-bad"/],
  ['busybox:' + 'a'.repeat(129), /tag "a+"/],
  ['busybox@sha256:abc', /digest "sha256:abc"/],
  ['busybox@md5:' + 'a'.repeat(32), /digest "md5:/],
  [`busybox@sha256:${'A'.repeat(64)}`, /digest/],
  ['bad..name', /"bad\.\.name"/],
  ['a//b', /empty path component/],
  ['a/', /empty path component/],
  ['/a', /empty path component|registry/],
  ['host:99999/a', /port "99999"/],
  ['host:abc/a', /port "abc"/],
  ['-bad.io/a', /registry host "-bad\.io"/],
  ['[zz]:5000/a', /IPv6/],
  // Hosts no URL can name: the worker reaches registries by URL (before: accepted, the job ended `internal`).
  ['[fe80::1%eth0]:5000/a', /"\[fe80::1%eth0\]:5000" is not a valid IPv6 address/],
  ['[1:2:3:4:5:6:7:8:9]/a', /registry host "\[1:2:3:4:5:6:7:8:9\]" is not a valid host name or address/],
  ['[:::]/a', /registry host "\[:::\]"/],
  ['[1.2.3.4]/a', /registry host "\[1\.2\.3\.4\]"/],
  ['1.2.3.256/a', /registry host "1\.2\.3\.256" is not a valid host name or address/],
  ['99999999999.1:5000/a', /registry host "99999999999\.1"/],
  ['xn--a.com/a', /registry host "xn--a\.com"/],
  ['busy box', /whitespace/],
  ['busybox\n', /whitespace or control/],
  ['a'.repeat(300), /longer than 255/],
  ['x'.repeat(2000), /longer than 1024/],
  ['_a', /"_a"/],
];

for (const [input, message] of invalid) {
  test(`rejects ${JSON.stringify(input.slice(0, 40))}`, () => {
    assert.throws(
      () => parseImageReference(input),
      (e: unknown) => {
        assert.ok(e instanceof SbxError);
        assert.equal(e.code, 'invalid_request');
        assert.match(e.message, message);
        assert.equal(e.details[0]?.path, 'image');
        return true;
      },
    );
  });
}
