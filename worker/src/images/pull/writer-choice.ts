/**
 * Which layer of a pull gets a writer thread for its files (../layers/unpack-pool.ts): the one that
 * sets the pull's time. Each layer unpacks on a thread of its own, so on two cores a pull takes about
 * as long as its largest layer or as its bytes over two, whichever is more. A layer with more than
 * half of the bytes is the longer of the two, and a second thread for its files brings it down to
 * about half. Just over half, the gain is about the excess (two even layers, one a little larger,
 * gain nothing), so the layer must hold at least 60 % of the bytes: then it comes down by a sixth or
 * more, against a few percent more CPU for the copy through the ring.
 */
export function layerForWriter(layers: ReadonlyArray<{ digest: string; size: number }>): string | null {
  let total = 0;
  let largest: { digest: string; size: number } | null = null;
  for (const layer of layers) {
    total += layer.size;
    if (largest === null || layer.size > largest.size) largest = layer;
  }
  return largest !== null && largest.size * 5 >= total * 3 ? largest.digest : null;
}
