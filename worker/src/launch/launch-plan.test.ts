import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostnameFor, jobEnv } from './launch-plan.ts';

test('job env: request over image, PATH and HOME defaulted, HOSTNAME the job’s unless the request sets it, TERM for a tty', () => {
  const env = jobEnv(['A=image', 'HOSTNAME=spoofed', 'B=keep'], { A: 'request', C: 'new' }, { hostname: 'sbx-abc', home: '/root' });
  assert.deepEqual(env, ['A=request', 'B=keep', 'C=new', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'HOSTNAME=sbx-abc']);
  const keepPath = jobEnv(['PATH=/opt/bin'], {}, { hostname: 'h', home: '/' });
  assert.deepEqual(keepPath, ['PATH=/opt/bin', 'HOME=/', 'HOSTNAME=h']);
  // docker -e HOSTNAME=mine: the request's own (it was dropped).
  assert.deepEqual(jobEnv(['HOSTNAME=image'], { HOSTNAME: 'mine' }, { hostname: 'h', home: '/' }), ['HOSTNAME=mine', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/']);
  // docker -t: TERM=xterm unless the image or the request says otherwise.
  assert.ok(jobEnv([], {}, { hostname: 'h', home: '/', tty: true }).includes('TERM=xterm'));
  assert.ok(!jobEnv([], {}, { hostname: 'h', home: '/' }).some((kv) => kv.startsWith('TERM=')));
  assert.deepEqual(jobEnv(['TERM=vt100'], {}, { hostname: 'h', home: '/', tty: true }).filter((kv) => kv.startsWith('TERM=')), ['TERM=vt100']);
});

test('hostname is derived from the job id, lower case, valid as a hostname', () => {
  assert.equal(hostnameFor('j_01JD3ZC7V8Q7R3S6D3XW0Q3Y2K'), 'sbx-s6d3xw0q3y2k');
  assert.match(hostnameFor('j_01JD3ZC7V8Q7R3S6D3XW0Q3Y2K'), /^sbx-[0-9a-z]{12}$/);
});
