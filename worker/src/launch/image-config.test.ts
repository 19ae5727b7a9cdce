import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SbxError } from '../../../core/src/errors.ts';
import { mergeEnv, resolveCommand, toRuntimeConfig } from './image-config.ts';

test('resolveCommand follows docker run semantics', () => {
  const image = { entrypoint: ['/entry', '-x'], cmd: ['default', 'args'] };
  assert.deepEqual(resolveCommand(image), ['/entry', '-x', 'default', 'args']);
  assert.deepEqual(resolveCommand(image, { command: ['mine'] }), ['/entry', '-x', 'mine']);
  assert.deepEqual(resolveCommand(image, { entrypoint: ['/other'] }), ['/other'], '--entrypoint drops the image Cmd');
  assert.deepEqual(resolveCommand(image, { entrypoint: ['/other'], command: ['a'] }), ['/other', 'a']);
  assert.deepEqual(resolveCommand(image, { entrypoint: [], command: ['sh'] }), ['sh'], 'an empty entrypoint clears it');
  assert.deepEqual(resolveCommand(image, { entrypoint: null, command: null }), ['/entry', '-x', 'default', 'args']);
  assert.deepEqual(resolveCommand({ entrypoint: null, cmd: ['sh'] }, { command: ['echo', 'hi'] }), ['echo', 'hi']);
  assert.deepEqual(resolveCommand({ entrypoint: null, cmd: ['sh'] }, { command: [] }), ['sh'], 'an empty command means the image Cmd (as Docker)');
  assert.throws(
    () => resolveCommand({ entrypoint: null, cmd: null }),
    (e: unknown) => e instanceof SbxError && e.code === 'invalid_request' && /no Entrypoint or Cmd/.test(e.message),
  );
});

test('mergeEnv overrides in place and appends new variables', () => {
  const image = ['PATH=/bin', 'LANG=C', 'EMPTY'];
  assert.deepEqual(mergeEnv(image, { LANG: 'en_US.UTF-8', NEW: 'x=y' }), ['PATH=/bin', 'LANG=en_US.UTF-8', 'EMPTY', 'NEW=x=y']);
  assert.deepEqual(mergeEnv(image, ['PATH=/usr/bin:/bin', 'A=1']), ['PATH=/usr/bin:/bin', 'LANG=C', 'EMPTY', 'A=1']);
  assert.deepEqual(mergeEnv(image), image);
  assert.deepEqual(mergeEnv(['A=1', 'A=2']), ['A=1']);
});

test('toRuntimeConfig fills Docker defaults', () => {
  const doc = { rootfs: { type: 'layers' as const, diff_ids: [] } };
  assert.deepEqual(toRuntimeConfig(doc), { env: [], entrypoint: null, cmd: null, workingDir: '/', user: '' });
  assert.deepEqual(toRuntimeConfig({ ...doc, config: { WorkingDir: 'app', User: '1000:1000', Env: null, Cmd: ['x'] } }), {
    env: [],
    entrypoint: null,
    cmd: ['x'],
    workingDir: '/app',
    user: '1000:1000',
  });
});
