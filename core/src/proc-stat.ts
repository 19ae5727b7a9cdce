/**
 * Fields of a /proc/<pid>/stat (or /proc/<pid>/task/<tid>/stat) line, numbered as proc(5) numbers
 * them from 1. The command name (field 2) may hold spaces and parentheses, so the fields after it are
 * counted from its last ')'.
 */
export function procStatFields(stat: string): (n: number) => string | undefined {
  const after = stat.slice(stat.lastIndexOf(')') + 2).trimEnd().split(' '); // field 3 (state) onwards
  return (n) => (n >= 3 ? after[n - 3] : undefined);
}
