#!/bin/sh
# PID 1 of the cgroup v2 test VM started by run-in-cgroup-v2-vm.sh (kernel cmdline init=<this file>).
#
# The kernel mounts the host's root file system (virtiofs, exported read-only by the host: a
# read-only bind mount of / in the host's virtiofsd) as /. Stage 1 puts a RAM-backed overlay over it
# and pivots into it, so the guest can write anywhere without touching the host; stage 2 mounts
# /proc /sys /dev, tmpfs /tmp /run /var/lib/sbx (tmpfs supports idmapped mounts on Linux >= 6.3,
# which the launcher needs for its layers and state dir), cgroup2 at /sys/fs/cgroup with every
# controller enabled in the root's cgroup.subtree_control, runs the command, reports its exit code
# on the console and powers off.
#
# Kernel cmdline: sbx.run=<host dir holding 'cmd' (a bash script) and 'cwd'>.
# Console (ttyS0, a log file on the host): boot messages and the lines 'SBX-VM-READY <uptime>' and
# 'SBX-VM-EXIT <code>' the host script waits for. The command's stdout/stderr go to /dev/hvc0
# (virtio console), which the host streams to its own stdout.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# The guest booted but could not set up or start the command: a failure of this checkout or script,
# never "this machine cannot boot a VM" (126, not 125: the host script and test.sh fail on it).
die() {
  echo "sbx-vm-init: $*" >/dev/console 2>/dev/null
  echo "SBX-VM-EXIT 126" >/dev/console 2>/dev/null
  poweroff_now
}

poweroff_now() {
  sync 2>/dev/null
  echo o >/proc/sysrq-trigger 2>/dev/null
  busybox poweroff -f 2>/dev/null
  sleep 5
  exit 1  # pid 1 exiting panics; with panic=-1 and qemu -no-reboot that also ends the VM
}

arg() {  # value of key=value on the kernel cmdline
  for w in $(cat /proc/cmdline); do
    case "$w" in "$1="*) echo "${w#*=}"; return 0 ;; esac
  done
  return 1
}

stage1() {
  # No fds yet when the root has no /dev/console: mount devtmpfs first.
  # (no redirection before this: the root is read-only and may lack /dev/null)
  mount -n -t devtmpfs -o mode=0755 devtmpfs /dev
  exec </dev/console >/dev/console 2>&1
  mount -n -t proc proc /proc || die "mount /proc failed"
  mount -n -t sysfs sysfs /sys || die "mount /sys failed"
  echo "sbx-vm-init: stage 1 at $(cut -d' ' -f1 /proc/uptime)s"
  modprobe overlay 2>/dev/null || grep -qw overlay /proc/filesystems || die "no overlayfs for $(uname -r)"
  mount -n -t tmpfs -o mode=0755 tmpfs /run || die "mount tmpfs /run failed"
  mkdir -p /run/ovl/upper /run/ovl/work /run/ovl/root
  mount -n -t overlay overlay -o lowerdir=/,upperdir=/run/ovl/upper,workdir=/run/ovl/work /run/ovl/root ||
    die "overlay over the shared root failed"
  mkdir -p /run/ovl/root/.oldroot
  echo "sbx-vm-init: overlay root at $(cut -d' ' -f1 /proc/uptime)s"
  umount -n /proc /sys 2>/dev/null
  cd /run/ovl/root || die "cd new root"
  # pivot_root (not chroot: a chrooted process may not create user namespaces, and the launcher does).
  pivot_root . .oldroot || die "pivot_root failed"
  exec chroot . /bin/sh "$0" stage2 </dev/console >/dev/console 2>&1
}

stage2() {
  mount -n -t proc proc /proc || die "mount /proc failed"
  mount -n -t sysfs sysfs /sys || die "mount /sys failed"
  mount -n -t devtmpfs -o mode=0755 devtmpfs /dev || die "mount /dev failed"
  exec </dev/console >/dev/console 2>&1
  mkdir -p /dev/pts /dev/shm /dev/mqueue
  mount -n -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
  ln -sf pts/ptmx /dev/ptmx 2>/dev/null || true
  mount -n -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
  mount -n -t mqueue mqueue /dev/mqueue 2>/dev/null || true
  ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin; ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr

  run=$(arg sbx.run) || die "no sbx.run= on the kernel cmdline"
  # Read the command before tmpfs hides the host's /tmp (where the host keeps it).
  [ -r "$run/cmd" ] || die "cannot read $run/cmd"
  mkdir -p /run.new && mount -n -t tmpfs -o mode=0755 tmpfs /run.new && cp "$run/cmd" "$run/cwd" /run.new/ || die "cannot copy the command"
  umount -l /.oldroot 2>/dev/null  # the overlay keeps what it needs
  mount -n --move /run.new /run || die "mount /run failed"
  # The checkout may live under a directory the tmpfs mounts below hide (a clone under /tmp, as CI
  # may make): keep a bind of it and put it back at the same path afterwards.
  cwd=$(cat /run/cwd)
  [ -d "$cwd" ] || die "the checkout $cwd is not visible in the guest"
  mkdir -p /run/checkout && mount -n --bind "$cwd" /run/checkout || die "cannot bind the checkout $cwd"
  # /tmp without nodev, like this host's /tmp (on the root fs): the P17 tests keep a launcher state
  # dir with device nodes under os.tmpdir().
  mount -n -t tmpfs -o mode=1777 tmpfs /tmp || die "mount /tmp failed"
  mount -n -t tmpfs -o mode=1777 tmpfs /var/tmp
  mkdir -p /var/lib/sbx && mount -n -t tmpfs -o mode=0755 tmpfs /var/lib/sbx || die "mount /var/lib/sbx failed"
  if [ ! -d "$cwd" ] || [ "$(stat -c %d:%i "$cwd" 2>/dev/null)" != "$(stat -c %d:%i /run/checkout)" ]; then
    mkdir -p "$cwd" && mount -n --bind /run/checkout "$cwd" || die "cannot put the checkout back at $cwd"
  fi

  # cgroup v2 only, mounted like systemd does, with every controller enabled for children.
  mount -n -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup 2>/dev/null ||
    mount -n -t cgroup2 cgroup2 /sys/fs/cgroup || die "mount cgroup2 failed"
  ctl=""
  for c in $(cat /sys/fs/cgroup/cgroup.controllers); do ctl="$ctl +$c"; done
  echo "$ctl" >/sys/fs/cgroup/cgroup.subtree_control || die "cannot enable controllers:$ctl"
  mount -n -t bpf bpf /sys/fs/bpf 2>/dev/null || true
  mount -n -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true

  hostname sbx-cgv2-vm 2>/dev/null || echo sbx-cgv2-vm >/proc/sys/kernel/hostname
  ip link set lo up 2>/dev/null || true
  ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true

  echo "sbx-vm-init: kernel $(uname -r); cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers);" \
    "subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
  echo "SBX-VM-READY $(cut -d' ' -f1 /proc/uptime)"

  out=/dev/hvc0
  [ -c "$out" ] || out=/dev/console
  exec 3<>"$out"  # kept open: hvc resets its termios at the last close
  stty -opost <&3 2>/dev/null || true  # no \n -> \r\n
  cd "$cwd" || die "cannot cd to $cwd"
  # The command's stdout/stderr is a pipe (as under CI), not the console tty.
  {
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root USER=root LOGNAME=root \
      TERM=dumb LANG=C.UTF-8 SBX_IN_CGROUP_V2_VM=1 \
      /bin/bash /run/cmd </dev/null 2>&1
    echo $? >/run/code
  } | cat >&3
  code=$(cat /run/code 2>/dev/null || echo 126)
  sync
  echo "SBX-VM-EXIT $code"
  poweroff_now
}

case "$1" in
  stage2) stage2 ;;
  *) stage1 ;;
esac
