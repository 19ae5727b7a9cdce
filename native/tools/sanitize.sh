#!/usr/bin/env bash
# The native code under AddressSanitizer + UndefinedBehaviorSanitizer; exits non-zero on any report
# or failing test. Everything is built into native/build-sanitize/ (build/Release is not touched):
#   1. a control: a heap overflow built with the same flags must be reported (the checks are live);
#   2. the harnesses test/sanitize/*.cc: host programs over the code sbx-init runs inside a job
#      (a static musl binary, which the sanitizers cannot instrument) and the config packet the
#      launcher sends it, fed seeded mutations;
#   3. both addons (binding.gyp's sbx_native and sbx_zstd sources) built with the sanitizers and
#      loaded by node with libasan preloaded, from a copy of the TypeScript tree whose
#      native/build/Release is the sanitized build: test/sanitize/decoders-fuzz.ts (hostile layer
#      bytes), then the launcher and decoder test files (SBX_SANITIZE_TESTS overrides the list).
#   sanitize.sh           all of it: about 200 s from scratch on a loaded 2-vCPU machine (the
#                         addon's build is two thirds of it when its objects are stale)
#   sanitize.sh --quick   1, 2 and the decoders' fuzz only (sbx_zstd alone is built): well under a
#                         minute, what native/test/sanitizers.test.ts runs with the test suite
# As root, like the launcher tests (the harnesses chroot into a scratch directory).
# What could not be instrumented: sbx-init itself (static musl), and the setup child's raw-syscall
# code is instrumented but shares the launcher's shadow (CLONE_VM; ns::mapStack clears its stacks').
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
native=$PWD
out=$native/build-sanitize

# -O0: a third faster to build than -O1 here, and no access optimised away from the checks.
sanitizers=(-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O0)
cxx=(g++ -std=c++17 -Wall -Wextra -D_GNU_SOURCE "${sanitizers[@]}")
napi_include=$(node -p "require('node-addon-api').include_dir")
addon_cxx=("${cxx[@]}" -fPIC -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -isystem /usr/include/node -isystem "$napi_include")
export ASAN_OPTIONS=detect_leaks=0:exitcode=86
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=87
default_tests=(native/test/launcher.test.ts native/test/hardening.test.ts native/test/input-files.test.ts
  native/test/output-files.test.ts native/test/output-files-parse.test.ts native/test/forged-messages.test.ts
  native/test/tty.test.ts native/test/setup-fds.test.ts native/test/exit-reason.test.ts native/test/listen.test.ts
  worker/src/images/layers/decoder-addon.test.ts worker/src/images/layers/layer-decoder.test.ts
  worker/src/images/layers/decompression-bombs.test.ts)

# The instrumentation is live: a one-byte heap overflow built with the same flags is reported.
check_control() {
  printf '#include <stdlib.h>\nint main(int argc, char**) { char* p = (char*)malloc(4); p[argc + 3] = 1; free(p); return 0; }\n' >"$out/control.cc"
  "${cxx[@]}" -o "$out/control" "$out/control.cc"
  local report
  report=$("$out/control" 2>&1 || true)
  if [[ $report == *'ERROR: AddressSanitizer: heap-buffer-overflow'* ]]; then return 0; fi
  echo "sanitize: the control's overflow went unreported: the sanitizers are not working" >&2
  return 1
}

# test/sanitize/<name>.cc + the sources of src/ it names on its first line ("// sources: ...").
# The addon's headers are on the path (spec.h includes napi.h); the napi functions they define
# inline are never called, and --gc-sections drops them with their references to node.
run_harnesses() {
  local failed=0 harness name sources
  for harness in test/sanitize/*.cc; do
    name=$(basename "${harness%.cc}")
    read -r -a sources < <(sed -n '1s|^// sources: ||p' "$harness")
    "${addon_cxx[@]}" -ffunction-sections -Wl,--gc-sections -I src -o "$out/$name" "$harness" "${sources[@]/#/src/}"
    "$out/$name" || failed=1
  done
  return "$failed"
}

# binding.gyp's source list of one target.
gyp_sources() {
  node -e 'const g = JSON.parse(require("fs").readFileSync("binding.gyp", "utf8"));
    console.log(g.targets.find((t) => t.target_name === process.argv[1]).sources.join("\n"))' "$1"
}

# One object per source, rebuilt when the source, any header or the flags changed; nproc at a time.
compile_objects() {
  local stamp=$out/obj/flags newest_header src obj
  if [[ "$(cat "$stamp" 2>/dev/null)" != "${addon_cxx[*]}" ]]; then rm -rf "$out/obj"; fi
  mkdir -p "$out/obj"
  printf '%s' "${addon_cxx[*]}" >"$stamp"
  newest_header=$(ls -t src/*.h src/*.inc | head -1)
  for src in "$@"; do
    obj=$out/obj/$(basename "${src%.cc}").o
    if [[ ! -f $obj || $src -nt $obj || $newest_header -nt $obj ]]; then printf '%s\n' "$src"; fi
  done | xargs -r -P "$(nproc)" -I{} sh -c 'exec "$@" -c {} -o "$0/obj/$(basename {} .cc).o"' "$out" "${addon_cxx[@]}"
}

link_addon() {
  local name=$1 libs=$2 src
  shift 2
  local objs=()
  for src in "$@"; do objs+=("$out/obj/$(basename "${src%.cc}").o"); done
  mkdir -p "$out/Release"
  g++ -shared "${sanitizers[@]}" -Wl,-z,now -o "$out/Release/$name.node" "${objs[@]}" $libs
}

build_zstd_addon() {
  local sources
  mapfile -t sources < <(gyp_sources sbx_zstd)
  compile_objects "${sources[@]}"
  link_addon sbx_zstd -lzstd "${sources[@]}"
}

build_native_addon() {
  local sources
  mapfile -t sources < <(gyp_sources sbx_native)
  compile_objects "${sources[@]}"
  link_addon sbx_native "" "${sources[@]}"
  cp build/Release/sbx-init "$out/Release/sbx-init"  # the jobs' pid 1: musl, not instrumented
}

# The TypeScript tree the tests import, with native/build/Release = the sanitized build.
make_test_tree() {
  local tree=$out/tree root
  root=$(dirname "$native")
  rm -rf "$tree"
  mkdir -p "$tree/native/build"
  cp "$root/package.json" "$root"/tsconfig*.json "$tree/"
  cp -a "$root/core" "$root/worker" "$tree/"
  cp "$native"/*.ts "$tree/native/"
  cp -a "$native/test" "$tree/native/"
  ln -s "$root/test" "$tree/test"
  ln -s "$native/src" "$tree/native/src"      # probes built by tests include its headers
  ln -s "$native/bench" "$tree/native/bench"  # host-mounts.test.ts runs its helper
  ln -s "$out/Release" "$tree/native/build/Release"
}

in_tree() { (cd "$out/tree" && LD_PRELOAD=$(gcc -print-file-name=libasan.so) "$@"); }

started=$SECONDS
rc=0
mkdir -p "$out"
# The tree holds copies of test files: gone when the run is, so that nothing collecting *.test.ts
# under native/ (infra/scripts/test.sh) finds them.
trap 'rm -rf "$out/tree"' EXIT
check_control
run_harnesses || rc=1
build_zstd_addon
make_test_tree
in_tree node --import tsx native/test/sanitize/decoders-fuzz.ts 2000 || rc=1
if [[ ${1:-} != --quick ]]; then
  build_native_addon
  read -r -a tests <<<"${SBX_SANITIZE_TESTS:-${default_tests[*]}}"
  in_tree node --import tsx --test --test-concurrency=1 "${tests[@]}" || rc=1
fi
echo "sanitize: $( ((rc == 0)) && echo clean || echo FAILED) in $((SECONDS - started)) s" >&2
exit "$rc"
