#!/usr/bin/env bash
# Builds sbx-init (every job's pid 1) as a static binary linked with musl rather than glibc.
# glibc's static start-up probes the CPU before main() (init_cpu_features, cache info: dozens of
# CPUID instructions, and on a VM each one exits to the hypervisor): 0.4-0.6 ms of CPU on the 2-vCPU
# VMs measured here, paid by every launch, against 0.05 ms for the same empty program with musl
# (native/BENCHMARKS.md). sbx-init needs nothing of glibc that musl lacks; it uses no C++ runtime.
# Called by binding.gyp: build-init.sh OUT SOURCE...
set -euo pipefail
out=$1
shift
gnu=$(gcc -dumpmachine)            # e.g. x86_64-linux-gnu
musl=${gnu%-gnu}-musl              # x86_64-linux-musl: Debian's musl-tools layout
specs=/usr/lib/$musl/musl-gcc.specs
if [[ ! -f $specs || ! -d /usr/include/$musl ]]; then
  echo "sbx-init is linked with musl: install Debian's musl-tools (infra/scripts/install-deps.sh does)" >&2
  exit 1
fi
# musl's headers carry no kernel headers: the uapi ones (linux/, asm/) come from linux-libc-dev.
inc=$(dirname "$out")/musl-kernel-include
mkdir -p "$inc"
ln -sfn /usr/include/linux "$inc/linux"
ln -sfn /usr/include/asm-generic "$inc/asm-generic"
ln -sfn "/usr/include/$gnu/asm" "$inc/asm"
objs=()
for src in "$@"; do
  obj=$(dirname "$out")/sbx-init.$(basename "${src%.cc}").o
  g++ -std=c++17 -O2 -Wall -Wextra -fno-exceptions -fno-rtti -fno-asynchronous-unwind-tables -D_GNU_SOURCE \
    -nostdinc -nostdinc++ -isystem "/usr/include/$musl" -isystem "$(gcc -print-file-name=include)" -isystem "$inc" \
    -c "$src" -o "$obj"
  objs+=("$obj")
done
gcc -specs "$specs" -static -o "$out.tmp" "${objs[@]}"
mv "$out.tmp" "$out"
