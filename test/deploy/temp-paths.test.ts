/**
 * The shell scripts root runs (infra/scripts, the VM runner, the shell benches) write no file of a
 * fixed name in /tmp or /var/tmp: any local user could make that name first, as a symlink to a file
 * root would then overwrite, or as a file of theirs root would write into (SECURITY.md P68; this host
 * has fs.protected_symlinks and protected_regular off, as many do). Every path there comes from
 * mktemp. A comment or a mount point is not a path the script writes: the check reads commands only.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const DIRS = ['infra/scripts', 'native/bench', 'native/tools', 'loadtest'];

function shellScripts(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : shellScripts(path);
    return name.endsWith('.sh') ? [path] : [];
  });
}

/** `file:line: text` of each command line that names a fixed path under /tmp or /var/tmp. */
function fixedTempPaths(file: string, text: string): string[] {
  return text.split('\n').flatMap((line, i) => {
    const code = line.replace(/(^|\s)#.*$/, ''); // the comment, not a `#` inside a word or ${#a}
    if (/\bmktemp\b/.test(code) || /^\s*mount\b/.test(code)) return [];
    return /(^|[\s"'=>])\/(var\/)?tmp\/[\w.-]+/.test(code) ? [`${file}:${i + 1}: ${line.trim()}`] : [];
  });
}

test('no script root runs names a fixed file under /tmp or /var/tmp', () => {
  const scripts = DIRS.flatMap((d) => shellScripts(join(ROOT, d)));
  assert.ok(scripts.length >= 8, `found only ${scripts.length} scripts`);
  assert.deepEqual(scripts.flatMap((f) => fixedTempPaths(relative(ROOT, f), readFileSync(f, 'utf8'))), []);
});

test('the check finds a fixed name in a copy (redirect, argument, variable), not a mktemp one or a comment', () => {
  const copy = [
    'apt-get install x >/tmp/sbx-vm-apt.log 2>&1',
    'cp a "/var/tmp/sbx-tools/umoci"',
    'LOG=/tmp/sbx.log',
    'RUN=$(mktemp -d /tmp/sbx-vm.XXXXXX)',
    '# keeps its log in /tmp/whatever',
    'mount -n -t tmpfs -o mode=1777 tmpfs /tmp',
  ].join('\n');
  assert.deepEqual(fixedTempPaths('copy.sh', copy), [
    'copy.sh:1: apt-get install x >/tmp/sbx-vm-apt.log 2>&1',
    'copy.sh:2: cp a "/var/tmp/sbx-tools/umoci"',
    'copy.sh:3: LOG=/tmp/sbx.log',
  ]);
});
