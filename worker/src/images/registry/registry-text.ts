/**
 * What a registry, token server or TLS peer said, made safe to put into a job's error message
 * (which reaches API callers, logs and terminals): ANSI/OSC escape sequences and every control,
 * format (bidi overrides, zero-width), private-use, unassigned and lone-surrogate character removed,
 * whitespace runs collapsed to one space, at most `max` characters.
 */
const ESCAPE_SEQUENCES = /\u001b\[[0-?]*[ -/]*[@-~]|\u009b[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)?|\u001b[@-Z\\-_]/g;
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}]/gu;

export const MAX_REGISTRY_TEXT = 200;

export function registryText(raw: string, max = MAX_REGISTRY_TEXT): string {
  const clean = raw.replace(ESCAPE_SEQUENCES, '').replace(/\s+/g, ' ').replace(UNPRINTABLE, '').trim();
  const chars = [...clean];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : clean;
}
