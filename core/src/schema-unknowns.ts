/**
 * What of a value that failed a strict schema this version does not know, as opposed to what is
 * wrong: a field it lacks (`unrecognized_keys`) or a value outside an enum (`invalid_value`), each
 * named by its path (`limits.gpus`, `pull "never"`). A newer version of sbx wrote them; the stored
 * request (job-spec.ts), the sealed registryAuth and control messages are read this way.
 */
import type { z } from 'zod';

export function unknownIn(issues: readonly z.core.$ZodIssue[], value: unknown, prefix = ''): string[] {
  const at = (path: readonly PropertyKey[]) => [prefix, ...path.map(String)].filter(Boolean).join('.');
  return issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => at([...i.path, k]));
    if (i.code === 'invalid_value') return [`${at(i.path)} ${JSON.stringify(valueAt(value, i.path))}`];
    return [];
  });
}

/** The value at `path` inside `value`, or undefined. */
export function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), value);
}

/** Whether an issue is one unknownIn() names. */
export const isUnknownIssue = (i: z.core.$ZodIssue): boolean => i.code === 'unrecognized_keys' || i.code === 'invalid_value';
