/**
 * Image references a tenant spells to confuse the service, through a whole stack: a seeded sweep of
 * registries written every way a URL parser, getaddrinfo and a reference grammar disagree on (IPv4
 * in octal, hex, short and single-number forms, out-of-range parts, five parts; IPv6 compressed,
 * uppercase, mapped, with zone ids, nine groups, ":::"; `localhost` in any case; odd ports) with odd
 * paths, tags and digests. Every registry the sweep names is loopback, private, link-local or
 * unspecified, so nothing leaves the machine and no DNS server is asked.
 *
 * Each reference must be refused at submission (400 invalid_request on `image`), or accepted with
 * the registry spelt as the worker's URLs spell it (so `127.1:5000` is one registry with
 * `127.0.0.1:5000`: one cache entry, one allow-list, credentials and insecure-registry name), its job
 * ending with a code a user can act on. Before the fix the API accepted hosts no URL can name
 * (`[fe80::1%eth0]`, `1.2.3.256`, `[1.2.3.4]`, `xn--a.com`) and their jobs ended `internal`; and
 * `127.1:<port>` was kept as written, a registry apart from `127.0.0.1:<port>` that the worker
 * reached over https. SBX_HOSTILE_SEED=N runs another sweep.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPublicAddress } from '../../core/src/egress/address-class.ts';
import { parseIp } from '../../core/src/egress/ip-address.ts';
import { hostileSeed, seededRandom } from '../harness/seeded-random.ts';
import { useStack } from '../harness/use-stack.ts';

const SEED = hostileSeed();
const REFERENCES = 200;
const CONCURRENCY = 6;
/** How a job on an accepted reference may end: its registry is refused, or cannot be reached. */
const ACTIONABLE = new Set(['egress_refused', 'image_pull_failed', 'image_not_found', 'registry_unauthorized']);

const e2e = useStack();
const rnd = seededRandom(SEED);
const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;

/** Addresses no job of the sweep may leave the machine for. */
const IPV4: ReadonlyArray<readonly number[]> = [[127, 0, 0, 1], [127, 9, 8, 7], [10, 1, 2, 3], [192, 168, 0, 1], [172, 16, 0, 1], [169, 254, 169, 254], [0, 0, 0, 0], [100, 64, 0, 1]];
const IPV6 = ['::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:7F00:1', 'fe80::1', 'FC00::1', '::', 'fd00:0:0::5'];

function number(n: number): string {
  return pick([() => String(n), () => `0x${n.toString(16)}`, () => `0X${n.toString(16).toUpperCase()}`, () => (n === 0 ? '0' : `0${n.toString(8)}`)])();
}

/** One IPv4 address in one of the spellings `inet_aton` and URLs accept (a.b.c.d, a.b.c, a.b, a). */
function ipv4(bytes: readonly number[]): string {
  const [a, b, c, d] = bytes as [number, number, number, number];
  return pick([
    () => [a, b, c, d].map(number).join('.'),
    () => [number(a), number(b), number((c << 8) | d)].join('.'),
    () => [number(a), number((b << 16) | (c << 8) | d)].join('.'),
    () => number(((a << 24) >>> 0) + ((b << 16) | (c << 8) | d)),
  ])();
}

/** A spelling no URL can name. */
function brokenIpv4(bytes: readonly number[]): string {
  const parts = bytes.map(String);
  return pick([
    () => [...parts.slice(0, 3), '256'].join('.'),
    () => ['300', ...parts.slice(1)].join('.'),
    () => [...parts, '5'].join('.'),
    () => [parts[0], '08', ...parts.slice(2)].join('.'),
    () => [parts[0], '0xg1', ...parts.slice(2)].join('.'),
    () => '99999999999.1',
    () => `${parts.join('.')}.`,
  ])();
}

function ipv6(): string {
  return pick([
    () => `[${pick(IPV6)}]`,
    () => `[${pick(IPV6)}%${pick(['eth0', 'lo', '25eth0', '1'])}]`,
    () => '[1:2:3:4:5:6:7:8:9]',
    () => '[:::]',
    () => '[1.2.3.4]',
    () => '[::1.2.3.4.5]',
    () => `[${pick(IPV6)}`,
    () => '[gggg::1]',
  ])();
}

function host(): string {
  const bytes = pick(IPV4);
  return pick([
    () => ipv4(bytes),
    () => ipv4(bytes),
    () => brokenIpv4(bytes),
    () => ipv6(),
    () => pick(['localhost', 'LocalHost', 'LOCALHOST', 'xn--a.localhost', 'xn--a.b', 'local_host.x', 'localhost.']),
  ])();
}

/** No port or a port, one time in four one the grammar refuses. */
function port(): string {
  return rnd() < 0.75 ? pick(['', '', ':5000', ':1', ':65535', ':05000']) : pick([':0', ':65536', ':99999', ':', ':0x50', ':+80']);
}

/** A repository, one time in five one the grammar refuses. */
function repository(): string {
  return rnd() < 0.8 ? pick(['a', 'x/y', 'deep/a/b/c']) : pick(['A', 'a..b', 'a//b', '', '_a', 'a'.repeat(256)]);
}

/** A tag and or digest, one time in five one the grammar refuses. */
function suffix(): string {
  const digest = 'sha256:' + 'ab'.repeat(32);
  return rnd() < 0.8 ? pick(['', ':t', ':v1.0', `@${digest}`, `:t@${digest}`]) : pick([':', ':-bad', '@sha256:abc', `@SHA256:${'AB'.repeat(32)}`]);
}

/** The host part of a canonical registry (`host[:port]`), brackets kept. */
function hostOf(registry: string): string {
  return registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.replace(/:[0-9]+$/, '');
}

/** Whether a URL names `written`'s host as a public address (the sweep never names one; see below). */
function namesPublicAddress(written: string): boolean {
  let hostname: string;
  try {
    hostname = new URL(`http://${hostOf(written)}/`).hostname;
  } catch {
    return false;
  }
  return parseIp(hostname) !== null && isPublicAddress(hostname);
}

function references(): string[] {
  const out: string[] = [];
  while (out.length < REFERENCES) {
    const registry = `${host()}${port()}`;
    // A spelling mistake could land on a public address: this machine has no way out, and a job
    // waiting on a connection that never opens would only slow the sweep down.
    if (namesPublicAddress(registry)) continue;
    // A first part without '.', ':' or '[' (a single-number address without a port) names a
    // namespace on Docker Hub, as in `docker pull`: that is a registry on the internet.
    if (/^[a-z0-9]+$/.test(registry) && registry !== 'localhost') continue;
    out.push(`${registry}/${repository()}${suffix()}`);
  }
  return out;
}

interface Answer {
  status: string;
  id?: string;
  image?: string;
  error?: { code: string; message: string; details?: Array<{ path: string }> };
}

test('hostile image references are refused at submission, or accepted spelt as URLs spell them and end with an actionable error', { timeout: 300_000 }, async () => {
  const problems: string[] = [];
  const outcomes = new Map<string, number>();
  const list = references();
  let next = 0;
  const one = async (reference: string): Promise<void> => {
    const res = await e2e.api.submit({ image: reference, command: ['true'] }, { wait: true });
    const body = res.body as unknown as Answer;
    if (res.status === 400) {
      outcomes.set('400', (outcomes.get('400') ?? 0) + 1);
      const named = body.error?.code === 'invalid_request' && body.error.details?.some((d) => d.path === 'image') && body.error.message.includes('image reference');
      if (!named) problems.push(`${JSON.stringify(reference)}: 400 not naming the image: ${JSON.stringify(body.error).slice(0, 300)}`);
      return;
    }
    if (res.status !== 200) return void problems.push(`${JSON.stringify(reference)}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    const outcome = body.status === 'error' ? `error/${body.error?.code}` : body.status;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    if (!(body.status === 'error' && ACTIONABLE.has(body.error?.code ?? ''))) problems.push(`${JSON.stringify(reference)}: ${outcome}: ${JSON.stringify(body.error).slice(0, 300)}`);
    const registry = body.image!.split('/')[0]!;
    let urlHost: string | null;
    try {
      urlHost = new URL(`http://${hostOf(registry)}/`).hostname;
    } catch {
      urlHost = null;
    }
    if (urlHost !== hostOf(registry)) problems.push(`${JSON.stringify(reference)}: accepted as ${body.image}, whose registry a URL spells ${urlHost ?? '(no URL can name it)'}`);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < list.length) await one(list[next++]!);
  }));
  const tally = JSON.stringify(Object.fromEntries(outcomes));
  assert.deepEqual(problems, [], `${problems.length} of ${list.length} references broke the contract (seed ${SEED}); outcomes ${tally}`);
  console.log(`seed ${SEED}: ${tally}`);
  assert.ok((outcomes.get('400') ?? 0) > 0 && (outcomes.get('error/egress_refused') ?? 0) > 0, `the sweep reached both sides: ${tally}`);
});

test("the stack's registry spelt another way is the same registry: the job runs, its image named as URLs name it", { timeout: 120_000 }, async () => {
  const { registry, images } = e2e.stack;
  const [address, registryPort] = [hostOf(registry.host), registry.host.slice(hostOf(registry.host).length + 1)];
  assert.equal(address, '127.0.0.1', 'the stack serves its registry on loopback');
  for (const spelt of ['127.1', '0x7f.0.0.1', '2130706433', '0177.0.0.01']) {
    const res = await e2e.api.submit({ image: `${spelt}:${registryPort}/test/busybox`, command: ['echo', 'same registry'] }, { wait: true });
    const body = res.body as unknown as Answer;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.status, 'succeeded', `${spelt}: ${JSON.stringify(body.error)}`);
    assert.equal(body.image, images.busybox, `${spelt} names the stack's registry as ${images.busybox} does`);
  }
});
