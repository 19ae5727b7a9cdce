import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyAddress, type AddressClass } from './address-class.ts';

const cases: Array<[string, AddressClass]> = [
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['10.1.2.3', 'private'],
  ['100.64.0.1', 'shared'],
  ['100.127.255.255', 'shared'],
  ['100.128.0.1', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.169.254', 'link-local'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'documentation'],
  ['192.88.99.1', 'reserved'],
  ['192.168.1.1', 'private'],
  ['198.18.0.1', 'benchmarking'],
  ['198.51.100.1', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['224.0.0.251', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  ['1.1.1.1', 'public'],
  ['8.8.8.8', 'public'],
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['fe80::1%eth0', 'link-local'],
  ['fc00::1', 'private'],
  ['fd12:3456::1', 'private'],
  ['fec0::1', 'private'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['2001::1', 'reserved'], // Teredo
  ['2001:2::1', 'benchmarking'],
  ['3fff::1', 'documentation'],
  ['100::1', 'reserved'], // discard-only, outside 2000::/3
  ['::7f00:1', 'reserved'], // IPv4-compatible (deprecated)
  ['2606:4700:4700::1111', 'public'],
  ['2a00:1450:4001::200e', 'public'],
  // IPv4-mapped IPv6 is judged as the IPv4 address, however it is spelt
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['[::ffff:169.254.169.254]', 'link-local'],
  ['0:0:0:0:0:ffff:a00:1', 'private'],
  ['::ffff:8.8.8.8', 'public'],
  // NAT64 and 6to4 by the IPv4 address they embed
  ['64:ff9b::127.0.0.1', 'loopback'],
  ['64:ff9b::a9fe:a9fe', 'link-local'],
  ['64:ff9b::8.8.8.8', 'public'],
  ['64:ff9b:1::1', 'private'],
  ['2002:7f00:1::1', 'loopback'],
  ['2002:c0a8:101::1', 'private'],
  ['2002:808:808::1', 'public'],
];

test('addresses are classed after the IANA special-purpose registries', () => {
  for (const [address, kind] of cases) assert.equal(classifyAddress(address), kind, address);
});

test('a non-IP is an error, not a class', () => {
  assert.throws(() => classifyAddress('localhost'), /not an IP address/);
  assert.throws(() => classifyAddress('127.1'), /not an IP address/);
});
