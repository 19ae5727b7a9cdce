import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layerForWriter } from './writer-choice.ts';

const layers = (...sizes: number[]) => sizes.map((size, i) => ({ digest: `sha256:${i}`, size }));

test('the layer that sets the pull\'s time gets the writer thread, and only that one', () => {
  assert.equal(layerForWriter(layers(230e6)), 'sha256:0', 'a layer alone in its pull');
  assert.equal(layerForWriter(layers(3.5e6, 28e6, 12e6, 250)), 'sha256:1', 'a base layer with 64 % of the bytes (a slim Python image)');
  assert.equal(layerForWriter(layers(60, 40)), 'sha256:0', '60 % is enough');
  assert.equal(layerForWriter(layers(59, 41)), null, '59 % is not');
  assert.equal(layerForWriter(layers(61_000_123, 60_999_877)), null, 'two even layers, one a little larger');
  assert.equal(layerForWriter(layers(10, 10, 10, 10)), null);
  assert.equal(layerForWriter([]), null, 'nothing to unpack');
});
