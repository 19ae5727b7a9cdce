/**
 * RegistryClients keeps one client per registry and per job's own credentials (registry-clients.ts).
 * Tenants choose both, so the clients kept are bounded: the least recently used are dropped.
 * Before: one client per distinct credentials, never freed (100,000 credentials: +139 MB of heap).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClients } from './registry-clients.ts';

/** The default bound (DEFAULT_MAX_REGISTRY_CLIENTS). */
const BOUND = 256;

/** Clients held, read from the map itself (not from a count the class keeps about it). */
const held = (clients: RegistryClients): number => (clients as unknown as { clients: Map<string, unknown> }).clients.size;

test('the clients kept for distinct job credentials and registries are bounded', async () => {
  const clients = new RegistryClients({});
  try {
    for (let i = 0; i < 2_000; i++) await clients.get('registry.example.com', { username: `robot-${i}`, password: 'secret' });
    for (let i = 0; i < 1_000; i++) await clients.get(`registry-${i}.example.com`, undefined);
    assert.ok(held(clients) <= BOUND, `held ${held(clients)} clients after 3,000 distinct ones`);
  } finally {
    await clients.close();
  }
});

test('a client used again is the same one, and the least recently used goes first', async () => {
  const clients = new RegistryClients({ maxClients: 3 });
  try {
    const creds = (n: number) => ({ username: `u${n}`, password: 'p' });
    const first = await clients.get('r.example', creds(1));
    await clients.get('r.example', creds(2));
    await clients.get('r.example', creds(3));
    assert.equal(await clients.get('r.example', creds(1)), first, 'a cached client is reused');
    await clients.get('r.example', creds(4)); // drops u2, the least recently used
    assert.equal(held(clients), 3);
    assert.equal(await clients.get('r.example', creds(1)), first, 'u1 was used recently: kept');
    const anonymous = await clients.get('r.example', undefined);
    assert.equal(await clients.get('r.example', undefined), anonymous);
    assert.equal(held(clients), 3);
  } finally {
    await clients.close();
  }
});
