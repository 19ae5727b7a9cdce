/** mulberry32: a small seedable generator (uniform in [0, 1)), so a run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The seed of a hostile sweep: SBX_HOSTILE_SEED, else a fixed one, so a failure replays. */
export function hostileSeed(): number {
  return Number(process.env.SBX_HOSTILE_SEED ?? 20261206);
}
