#!/usr/bin/env bash
# Runs every test: unit tests next to the code, native launcher tests, end-to-end tests against a
# real Redis, registry, API and worker. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/install-deps.sh
npx --no-install tsc -p tsconfig.json --noEmit
# The cgroup v2 path on a real cgroup v2 kernel: these hosts are v1, so a qemu VM (software
# emulation where KVM is unusable) boots Debian's 6.12 kernel with cgroup2 at /sys/fs/cgroup and runs
# the launcher's tests there (infra/scripts/vm/). SBX_TEST_CGROUP_V2_VM=0 skips it (said in the last
# line). Exit codes of the VM script: 125 = this machine cannot boot the VM (no qemu/kernel, or the
# guest kernel did not come up: under software emulation it sometimes oopses at boot), up to three
# tries, then reported loudly and skipped; 124 = time-out, two tries; anything else (a failing test,
# 126 = the guest could not start the command) fails the run.
v2_summary="cgroup v2 VM: skipped (SBX_TEST_CGROUP_V2_VM=0)"
if [[ ${SBX_TEST_CGROUP_V2_VM:-1} != 0 ]]; then
  # The same launcher test files as on this host: they build cgroup paths for the mode they find.
  # The kernel-floor bench (what `npm run bench:throughput` runs beside the launchers) has a v2 path too;
  # trace-phases: the phase times `bench:launcher --phases` reads, on the v2 path.
  v2_tests=(native/test/launcher.test.ts native/test/hardening.test.ts native/test/cgroup-v2.test.ts native/test/input-files.test.ts native/test/output-files.test.ts native/test/listen.test.ts native/test/host-mounts.test.ts native/test/trace-phases.test.ts test/bench/kernel-floor.test.ts)
  # Run as plain JavaScript bundled here, with the TypeScript fixtures they start: under the VM's
  # software emulation tsx costs ~5 s per process, twice per test file (infra/scripts/vm/bundle-tests.ts).
  bundles=$PWD/native/build/test-bundles
  rm -rf "$bundles"
  npx --no-install tsx infra/scripts/vm/bundle-tests.ts "$bundles" "${v2_tests[@]}" native/test/fixtures/*.ts native/bench/kernel-floor.ts
  v2_bundles=()
  for f in "${v2_tests[@]}"; do v2_bundles+=("$bundles/${f%.ts}.mjs"); done
  for attempt in 1 2 3; do
    rc=0
    SBX_VM_TIMEOUT=${SBX_VM_TIMEOUT:-900} bash infra/scripts/vm/run-in-cgroup-v2-vm.sh \
      env SBX_TEST_BUNDLES="$bundles" node --test --test-reporter=spec "${v2_bundles[@]}" || rc=$?
    if ((rc == 0)); then v2_summary="cgroup v2 VM: launcher tests passed"; echo "sbx: $v2_summary" >&2; break; fi
    if ((rc != 124 && rc != 125)); then echo "sbx: cgroup v2 VM: launcher tests FAILED (exit $rc)" >&2; exit "$rc"; fi
    if ((attempt == 3 && rc == 125)); then
      v2_summary="cgroup v2 VM: NOT RUN: this machine cannot boot the VM (see above)"
      echo "sbx: WARNING: $v2_summary" >&2
      break
    fi
    if ((rc == 124 && attempt >= 2)); then echo "sbx: cgroup v2 VM: the tests did not finish in time (exit $rc), again" >&2; exit "$rc"; fi
    echo "sbx: cgroup v2 VM did not finish (exit $rc); trying once more" >&2
  done
fi

rm -rf "${bundles:-}"
# Not under native/build*: build output (native/tools/sanitize.sh copies test files there while it runs).
mapfile -t files < <(find core api worker native cli client test -name '*.test.ts' -not -path '*/node_modules/*' -not -path 'native/build*' | sort)
echo "sbx: ${#files[@]} test files" >&2
rc=0
node --import tsx --test --test-concurrency="${SBX_TEST_CONCURRENCY:-2}" --test-reporter=spec --test-timeout=600000 "${files[@]}" || rc=$?
echo "sbx: $v2_summary; this host ($(stat -fc %T /sys/fs/cgroup | sed 's/cgroup2fs/cgroup v2/;s/tmpfs/cgroup v1/')): $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)")"
exit "$rc"
