import { test } from 'node:test';
import assert from 'node:assert/strict';
import { egressAllowList } from './egress-allow.ts';
import { EgressPolicy } from './egress-policy.ts';
import { addressKey, hostAddresses } from './host-addresses.ts';

test('the host\'s addresses: every interface\'s, one spelling each, read again at most every ttl', () => {
  let reads = 0;
  let interfaces: Record<string, Array<{ address: string }>> = { lo: [{ address: '127.0.0.1' }, { address: '::1' }], eth0: [{ address: '93.184.215.14' }, { address: 'fe80::1%eth0' }] };
  let now = 0;
  const own = hostAddresses(() => (reads++, interfaces), 1000, () => now);
  assert.deepEqual([...own()].sort(), ['0:0:0:0:0:0:0:1', '127.0.0.1', '93.184.215.14', 'fe80:0:0:0:0:0:0:1']);
  interfaces = { eth0: [{ address: '93.184.215.15' }] };
  now = 999;
  assert.ok(own().has('93.184.215.14'), 'not read again within the ttl');
  now = 1000;
  assert.deepEqual([...own()], ['93.184.215.15']);
  assert.equal(reads, 2);
  assert.equal(addressKey('::ffff:93.184.215.14'), '93.184.215.14');
  assert.equal(addressKey('not-an-ip'), null);
  const failing = hostAddresses(() => { throw new Error('no'); }, 0);
  assert.equal(failing().size, 0);
});

test('a policy with the host\'s addresses refuses them though public, unless the allow-list names them', () => {
  const ownAddresses = hostAddresses(() => ({ eth0: [{ address: '93.184.215.14' }, { address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c' }] }));
  const policy = new EgressPolicy([], { ownAddresses });
  for (const address of ['93.184.215.14', '::ffff:93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c', '127.0.0.1']) {
    assert.equal(policy.allows({ host: 'worker.example', port: 80, address }), false, address);
  }
  assert.equal(policy.allows({ host: 'example.com', port: 80, address: '93.184.215.15' }), true, 'other public addresses');
  assert.equal(new EgressPolicy().allows({ host: 'x', port: 80, address: '93.184.215.14' }), true, 'by default this host\'s own: 93.184.215.14 is not one');
  const allowing = new EgressPolicy(egressAllowList('93.184.215.14:8080', 'worker.example'), { ownAddresses });
  assert.equal(allowing.allows({ host: '93.184.215.14', port: 8080, address: '93.184.215.14' }), true);
  assert.equal(allowing.allows({ host: '93.184.215.14', port: 80, address: '93.184.215.14' }), false);
  assert.equal(allowing.allows({ host: 'worker.example', port: 80, address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c' }), true);
});
