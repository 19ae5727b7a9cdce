#!/usr/bin/env bash
# Run a command as root in /work/main (this checkout) on a real cgroup v2 host: a small qemu VM
# booted from Debian's 6.12 cloud kernel that shares this machine's root file system read-only
# (virtiofs; guest writes go to a RAM overlay), mounts cgroup2 at /sys/fs/cgroup with every
# controller enabled, and has tmpfs /tmp and /var/lib/sbx (idmapped mounts need tmpfs >= 6.3).
#
#   bash infra/scripts/vm/run-in-cgroup-v2-vm.sh [command...]
#     default command: node --import tsx --test native/test/cgroup-v2.test.ts
#
# Streams the command's output, exits with its exit code. Exits 125 when this machine cannot run the
# VM (no qemu/kernel, not root, the guest kernel did not boot), 126 when the VM booted but could not
# start the command (a fault of this checkout or these scripts: never to be skipped), 124 on the
# total timeout.
# Environment: SBX_VM_TIMEOUT (total seconds, default 1800), SBX_VM_MEM (default 3G),
# SBX_VM_CPUS (default 1, at most 4), SBX_VM_CPU (qemu -cpu model under TCG, default qemu64), SBX_VM_ACCEL (auto | kvm | tcg; default auto: kvm if a
# probe boot works, else tcg), SBX_VM_KERNEL (a vmlinuz whose modules are in /lib/modules),
# SBX_VM_VERBOSE=1 (print the guest console log).
set -euo pipefail

t_start=$(date +%s.%N)
TIMEOUT=${SBX_VM_TIMEOUT:-1800}
MEM=${SBX_VM_MEM:-3G}
# One vCPU by default: under multi-threaded TCG the guest kernel's live code patching (int3-based
# text_poke) sometimes oopses with two vCPUs (seen in ~1 of 4 runs: "Oops: int3" in kmalloc), and the
# launcher tests are barely faster with two (99 s vs 109 s measured).
CPUS=${SBX_VM_CPUS:-1}
((CPUS > 4)) && CPUS=4
ACCEL=${SBX_VM_ACCEL:-auto}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
INIT="$HERE/guest-init.sh"
KPKG=linux-image-6.12-cloud-amd64  # bookworm-security: Linux 6.12 (tmpfs idmapped mounts need >= 6.3)
VIRTIOFSD=/usr/lib/qemu/virtiofsd   # shipped by qemu-system-common 7.2 (bookworm)

log() { echo "sbx-vm: $*" >&2; }
cannot() { log "cannot run the cgroup v2 VM: $*"; exit 125; }
elapsed() { echo "$(date +%s.%N) - ${1:-$t_start}" | bc; }
remaining() { local r; r=$(echo "$TIMEOUT - ($(date +%s.%N) - $t_start)" | bc); echo "${r%.*}"; }

if (($# == 0)); then set -- node --import tsx --test native/test/cgroup-v2.test.ts; fi
[[ $(id -u) == 0 ]] || cannot "must run as root (virtiofsd exports / and qemu needs /dev/kvm or enough rights)"
[[ $(uname -m) == x86_64 ]] || cannot "x86_64 only"

# --- packages (idempotent, quiet when present) --------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null && [[ -x $VIRTIOFSD ]] || need+=(qemu-system-x86)
command -v bc >/dev/null || need+=(bc)
# Newest installed cloud kernel >= 6.3 with its modules (overlay is a module).
find_kernel() {
  local k v minor
  for k in $(ls /boot/vmlinuz-6.*-cloud-amd64 2>/dev/null | sort -V -r); do
    v=${k#/boot/vmlinuz-}
    minor=$(echo "$v" | cut -d. -f2)
    if ((minor >= 3)) && [[ -d /lib/modules/$v ]]; then echo "$k"; return 0; fi
  done
  return 1
}
[[ -n ${SBX_VM_KERNEL:-} ]] || find_kernel >/dev/null || need+=("$KPKG")
if ((${#need[@]})); then
  command -v apt-get >/dev/null || cannot "missing ${need[*]} and no apt-get"
  log "installing ${need[*]} (apt)"
  # A file of its own (mktemp), never a fixed name in /tmp: another user could make that first, as a
  # symlink to a file root would then overwrite (SECURITY.md P68).
  apt_log=$(mktemp /tmp/sbx-vm-apt.XXXXXX)
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >"$apt_log" 2>&1; then
    apt-get update -q >>"$apt_log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >>"$apt_log" 2>&1 ||
      cannot "apt-get install ${need[*]} failed (see $apt_log)"
  fi
  rm -f "$apt_log"
fi
command -v qemu-system-x86_64 >/dev/null || cannot "qemu-system-x86_64 not found"
[[ -x $VIRTIOFSD ]] || cannot "$VIRTIOFSD not found (qemu-system-common >= 8 no longer ships it)"

KERNEL=${SBX_VM_KERNEL:-$(find_kernel || true)}
[[ -n $KERNEL && -r $KERNEL ]] || cannot "no Linux >= 6.3 cloud kernel in /boot (apt-get install $KPKG)"
KVER=${KERNEL#/boot/vmlinuz-}

# The launcher addon (the guest's root is read-only to the host: build it here if missing).
if [[ ! -f $REPO/native/build/Release/sbx_native.node ]]; then
  log "building the native addon"
  (cd "$REPO" && npx --no-install node-gyp rebuild --directory native >/dev/null) || { log "native addon build failed"; exit 1; }
fi

# --- run ---------------------------------------------------------------------------------------
RUN=$(mktemp -d /tmp/sbx-vm.XXXXXX)
chmod 755 "$RUN"
qemu_pid='' fsd_pid='' probe_pid=''
cleanup() {
  local p
  for p in $probe_pid $qemu_pid $fsd_pid; do kill "$p" 2>/dev/null || true; done
  for p in $probe_pid $qemu_pid $fsd_pid; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

printf '%q ' "$@" >"$RUN/cmd"
echo >>"$RUN/cmd"
echo "$REPO" >"$RUN/cwd"

# virtiofsd in a private mount namespace on a read-only bind of / (the host enforces read-only).
mkdir "$RUN/root"
unshare --mount --propagation private sh -c '
  mount --bind / "$1/root" && mount -o remount,bind,ro "$1/root" &&
  exec "$2" --socket-path="$1/vfs.sock" -o source="$1/root" -o sandbox=chroot -o cache=auto \
    -o log_level=err --rlimit-nofile=65536' sh "$RUN" "$VIRTIOFSD" 2>"$RUN/virtiofsd.log" &
fsd_pid=$!
for _ in $(seq 100); do [[ -S $RUN/vfs.sock ]] && break; kill -0 $fsd_pid 2>/dev/null || break; sleep 0.05; done
[[ -S $RUN/vfs.sock ]] || cannot "virtiofsd did not start: $(cat "$RUN/virtiofsd.log")"

# KVM when a probe boot reaches the kernel (on PVM-style nested hosts /dev/kvm exists but cannot
# run a stock kernel), else TCG.
probe_kvm() {
  [[ -r /dev/kvm && -w /dev/kvm ]] || return 1
  local cpu
  for cpu in host host,-arch-capabilities; do
    : >"$RUN/probe.log"
    qemu-system-x86_64 -accel kvm -cpu "$cpu" -m 256 -smp 1 -nodefaults -display none -no-reboot \
      -serial file:"$RUN/probe.log" -kernel "$KERNEL" -append "console=ttyS0 panic=-1 root=/dev/null" \
      </dev/null >"$RUN/probe.err" 2>&1 &
    probe_pid=$!
    disown $probe_pid  # no "Aborted" job notice when this qemu asserts
    local ok=1
    for _ in $(seq 150); do
      if grep -q "Linux version" "$RUN/probe.log" 2>/dev/null; then ok=0; break; fi
      kill -0 $probe_pid 2>/dev/null || break
      grep -q -i -E "internal error|failed to set MSR" "$RUN/probe.err" 2>/dev/null && break
      sleep 0.1
    done
    kill $probe_pid 2>/dev/null || true
    for _ in $(seq 50); do kill -0 $probe_pid 2>/dev/null || break; sleep 0.1; done
    kill -9 $probe_pid 2>/dev/null || true
    probe_pid=''
    if ((ok == 0)); then KVM_CPU=$cpu; return 0; fi
    KVM_ERR=$(grep -i -m1 -E "error|assert" "$RUN/probe.err" || true)
  done
  return 1
}
KVM_CPU='' KVM_ERR=''
case $ACCEL in
  kvm) probe_kvm || cannot "kvm requested but a probe boot failed: ${KVM_ERR:-no kernel output}" ;;
  tcg) ;;
  auto) if probe_kvm; then ACCEL=kvm; else ACCEL=tcg; log "kvm unusable (${KVM_ERR:-no /dev/kvm or no kernel output}); using tcg"; fi ;;
  *) cannot "SBX_VM_ACCEL must be auto, kvm or tcg" ;;
esac
if [[ $ACCEL == kvm ]]; then accel=(-accel kvm -cpu "$KVM_CPU"); else accel=(-accel tcg,thread=multi -cpu "${SBX_VM_CPU:-qemu64}"); fi
# (TCG: qemu64, not max: with max the guest runs ~2x slower here and oopsed once in
# kmem_cache_alloc under the tests.)

left=$(remaining)
((left > 10)) || { log "total timeout (${TIMEOUT}s) reached before boot"; exit 124; }
log "booting $KVER ($ACCEL, $CPUS cpus, $MEM) to run: $*"
t_boot=$(date +%s.%N)
: >"$RUN/console.log"
# stdout: the command's output (virtio console hvc0). Console (ttyS0): $RUN/console.log.
qemu-system-x86_64 "${accel[@]}" -machine q35 -m "$MEM" -smp "$CPUS" -nodefaults -no-user-config \
  -display none -no-reboot -monitor none \
  -object memory-backend-memfd,id=mem,size="$MEM",share=on -numa node,memdev=mem \
  -chardev socket,id=vfs,path="$RUN/vfs.sock" -device vhost-user-fs-pci,chardev=vfs,tag=hostroot \
  -serial file:"$RUN/console.log" \
  -chardev stdio,id=out,signal=off -device virtio-serial-pci -device virtconsole,chardev=out \
  -device virtio-rng-pci \
  -kernel "$KERNEL" \
  -append "console=ttyS0 loglevel=$([[ -n ${SBX_VM_VERBOSE:-} ]] && echo 7 || echo 4) panic=-1 root=hostroot rootfstype=virtiofs ro init=$INIT sbx.run=$RUN cgroup_no_v1=all random.trust_cpu=on mitigations=off" \
  </dev/null 2>"$RUN/qemu.err" &
qemu_pid=$!

# Wait for the guest (ready line, exit line, qemu exit or the deadline).
deadline=$(echo "$(date +%s) + $left" | bc)
ready='' code=''
while :; do
  if [[ -z $ready ]] && grep -q -a '^SBX-VM-READY' "$RUN/console.log"; then
    ready=$(elapsed "$t_boot")
    log "guest ready after ${ready}s ($(grep -a -m1 '^sbx-vm-init: kernel' "$RUN/console.log" | sed 's/^sbx-vm-init: //'))"
  fi
  line=$(grep -a -m1 '^SBX-VM-EXIT' "$RUN/console.log" || true)
  if [[ -n $line ]]; then code=${line#SBX-VM-EXIT }; code=${code//[^0-9]/}; break; fi
  kill -0 $qemu_pid 2>/dev/null || break
  if (($(date +%s) >= deadline)); then
    log "total timeout (${TIMEOUT}s) reached; stopping the VM"
    [[ -n ${SBX_VM_VERBOSE:-} ]] && tail -n 50 "$RUN/console.log" >&2
    exit 124
  fi
  sleep 0.2
done
for _ in $(seq 100); do kill -0 $qemu_pid 2>/dev/null || break; sleep 0.1; done  # poweroff
if [[ -z $code ]]; then  # qemu may have ended between the last two checks
  line=$(grep -a -m1 '^SBX-VM-EXIT' "$RUN/console.log" || true)
  [[ -z $line ]] || { code=${line#SBX-VM-EXIT }; code=${code//[^0-9]/}; }
fi
[[ -n ${SBX_VM_VERBOSE:-} ]] && { log "guest console:"; cat "$RUN/console.log" >&2; }
if [[ -z $code ]]; then
  log "the VM ended without running the command to completion (boot failure?). qemu: $(tr '\n' ' ' <"$RUN/qemu.err" | cut -c1-500)"
  log "last console lines:"
  grep -a -v '^\s*$' "$RUN/console.log" | tail -n 25 >&2
  exit 125
fi
if [[ $code == 126 ]] && grep -q -a '^sbx-vm-init:' "$RUN/console.log"; then
  grep -a '^sbx-vm-init:' "$RUN/console.log" | grep -v 'kernel ' >&2 || true
fi
run_s=$(echo "$(elapsed "$t_boot") - ${ready:-0}" | bc)
log "accel=$ACCEL boot=${ready:-?}s command=${run_s}s total=$(elapsed)s exit=$code"
exit "$code"
