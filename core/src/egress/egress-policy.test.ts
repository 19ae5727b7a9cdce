import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EgressRefusedError } from '../errors.ts';
import { egressAllowList, parseEgressAllow, parseEgressAllowEntry } from './egress-allow.ts';
import { EgressPolicy } from './egress-policy.ts';

test('allow-list entries: host, host:port, IP, IP:port, [IPv6]:port, CIDR; anything else is refused', () => {
  assert.deepEqual(parseEgressAllowEntry('Registry.Example.'), { kind: 'name', name: 'registry.example', port: null });
  assert.deepEqual(parseEgressAllowEntry('localhost:5000'), { kind: 'name', name: 'localhost', port: 5000 });
  assert.deepEqual(parseEgressAllowEntry('10.0.0.5:5000'), { kind: 'network', network: Uint8Array.from([10, 0, 0, 5]), prefix: 32, port: 5000 });
  assert.deepEqual(parseEgressAllowEntry('10.0.0.0/8'), { kind: 'network', network: Uint8Array.from([10, 0, 0, 0]), prefix: 8, port: null });
  assert.deepEqual(parseEgressAllowEntry('::ffff:10.0.0.0/104'), { kind: 'network', network: Uint8Array.from([10, 0, 0, 0]), prefix: 8, port: null });
  assert.equal(parseEgressAllowEntry('[::1]:5000')?.kind, 'network');
  assert.equal(parseEgressAllowEntry('fd00::/8')?.kind, 'network');
  assert.equal(parseEgressAllowEntry('::1')?.kind, 'network');
  for (const bad of ['', 'http://x', 'x:0', 'x:65536', 'x:', '10.0.0.0/33', '::/129', '[::1', '[x]:1', '300.1.1.1', '10.0.0.0/8:80', 'a b', '-x', 'x/8']) {
    assert.equal(parseEgressAllowEntry(bad), null, bad);
  }
  assert.deepEqual(parseEgressAllow('a, ,b:1'), { entries: egressAllowList('a', 'b:1') });
  assert.deepEqual(parseEgressAllow('a,http://b'), { bad: 'http://b' });
  assert.throws(() => egressAllowList('nope nope'), /egress allow entry "nope nope" is not host, host:port/);
});

test('by default only public addresses are allowed', () => {
  const policy = new EgressPolicy();
  assert.equal(policy.allows({ host: 'example.com', port: 443, address: '93.184.215.14' }), true);
  assert.equal(policy.allows({ host: 'example.com', port: 443, address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c' }), true);
  for (const address of ['127.0.0.1', '10.0.0.1', '100.64.1.1', '169.254.169.254', '::1', '::ffff:127.0.0.1', 'fd00::1', 'fe80::1', '0.0.0.0', '::', '224.0.0.1', 'not-an-ip']) {
    assert.equal(policy.allows({ host: 'evil.example', port: 80, address }), false, address);
  }
});

test('allow entries: a name matches the requested host, an address or network the connected address, a port only that port', () => {
  const policy = new EgressPolicy(egressAllowList('127.0.0.1:5000', 'registry.internal', '10.0.0.0/8', '[::1]:6000'));
  const allows = (host: string, port: number, address: string) => policy.allows({ host, port, address });
  assert.equal(allows('127.0.0.1', 5000, '127.0.0.1'), true);
  assert.equal(allows('localhost', 5000, '127.0.0.1'), true, 'the same destination by another name');
  assert.equal(allows('127.0.0.1', 5000, '::ffff:127.0.0.1'), true, 'IPv4-mapped is the IPv4 address');
  assert.equal(allows('127.0.0.1', 6379, '127.0.0.1'), false, 'another port');
  assert.equal(allows('127.0.0.2', 5000, '127.0.0.2'), false, 'another address');
  assert.equal(allows('REGISTRY.internal.', 8443, '192.168.1.9'), true, 'a name entry, any port, whatever it resolves to');
  assert.equal(allows('other.internal', 8443, '192.168.1.9'), false);
  assert.equal(allows('db.internal', 5432, '10.200.0.1'), true);
  assert.equal(allows('[::1]', 6000, '::1'), true);
  assert.equal(allows('::1', 6001, '::1'), false);
});

test('check() throws EgressRefusedError whose message names the host, never the port', () => {
  const policy = new EgressPolicy();
  const messages = [6379, 8080, 1].map((port) => {
    try {
      policy.check({ host: '127.0.0.1', port, address: '127.0.0.1' });
    } catch (e) {
      assert.ok(e instanceof EgressRefusedError);
      assert.equal(e.code, 'egress_refused');
      assert.equal(e.retryable, false);
      return e.message;
    }
    return assert.fail('not refused');
  });
  assert.equal(new Set(messages).size, 1);
  assert.match(messages[0]!, /^connecting to 127\.0\.0\.1 is refused: it is not a public address/);
});
