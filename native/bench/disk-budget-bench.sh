#!/usr/bin/env bash
# P27 disk budget: per-job setup + teardown cost of the three ways to cap a job's writable layer.
#
#   (a) tmpfs   : mount -t tmpfs -o size=64M + umount                       (what the launcher does)
#   (b) loop    : truncate 64 MiB file + mkfs.ext4 + mount -o loop + umount + rm
#   (c) prjquota: on one loop ext4 made once with -O quota,project and mounted -o prjquota:
#                 mkdir + chattr -p ID +P + setquota -P ID (64 MiB, 16384 inodes) + rmdir + clear
#   (d) context : writing 32 MiB as 2,048 x 16 KiB files into each (page cache), then syncfs,
#                 and 80 MiB into each 64 MiB budget (as uid 65534, like a job) to see the error
#   (a'), (c')  : the same steps as raw syscalls (disk-budget-ops.c, compiled with gcc): no spawns
#
# Repetitions are interleaved (a b c, rotating the order) so drift and noise hit all alike.
# The time of each variant includes spawning its tools (2 processes for tmpfs, 5 for the others);
# one `/bin/true` spawn is measured alongside so the syscall-only cost can be estimated.
# Usage (root): bash native/bench/disk-budget-bench.sh [reps=60] [write-reps=7]
# Env: SBX_BENCH_DIR (default /var/tmp: the loop files live there, i.e. on the host's disk).
set -euo pipefail

REPS=${1:-60}
WREPS=${2:-7}
SIZE_MB=64
INODES=16384 # what the launcher gives a 64 MiB layer: diskBytes / 4096
FILES=2048
FILE_KB=16

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
((REPS >= 50)) || { echo "reps must be >= 50" >&2; exit 1; }

need=()
command -v mkfs.ext4 >/dev/null && command -v chattr >/dev/null || need+=(e2fsprogs)
command -v setquota >/dev/null || need+=(quota)
if ((${#need[@]})); then
  echo "installing ${need[*]} (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

BASE=$(mktemp -d "${SBX_BENCH_DIR:-/var/tmp}/sbx-disk-bench.XXXXXX")
MNT=$BASE/mnt
QIMG=$BASE/quota.img
QMNT=$BASE/quota
chmod 755 "$BASE" # the writers below run as uid 65534
mkdir -p "$MNT" "$QMNT"

cleanup() {
  set +e
  for m in "$MNT" "$QMNT"; do mountpoint -q "$m" && umount "$m"; done
  for l in $(losetup -j "$QIMG" -O NAME -n 2>/dev/null) $(losetup -j "$BASE/loop.img" -O NAME -n 2>/dev/null); do
    losetup -d "$l"
  done
  rm -rf "$BASE"
}
trap cleanup EXIT

MKFS_OPTS=(-F -q -E lazy_itable_init=1,lazy_journal_init=1,nodiscard)

now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

# ---- the variants: each is one job's setup + teardown ----
v_tmpfs() {
  mount -t tmpfs -o "size=${SIZE_MB}M,nr_inodes=$INODES,mode=0755" sbx-bench "$MNT"
  umount "$MNT"
}
v_loop() {
  local img=$BASE/loop.img
  truncate -s "${SIZE_MB}M" "$img"
  mkfs.ext4 "${MKFS_OPTS[@]}" -N "$INODES" "$img"
  mount -o loop,nosuid,nodev "$img" "$MNT"
  umount "$MNT" # util-linux sets LO_FLAGS_AUTOCLEAR: the loop device goes with the mount
  rm -f "$img"
}
QID=1000
v_quota() {
  local d=$QMNT/job
  mkdir "$d"
  chattr -p "$QID" +P "$d"
  setquota -P "$QID" 0 $((SIZE_MB * 1024)) 0 "$INODES" "$QMNT"
  rmdir "$d" # a real job leaves files: rm -rf of its tree comes on top (not timed here)
  setquota -P "$QID" 0 0 0 0 "$QMNT"
}
v_spawn() { /bin/true; }
# Syscall-only versions (disk-budget-ops.c): they print their own time in microseconds.
v_tmpfs_sys() { "$OPS" tmpfs "$MNT" $((SIZE_MB << 20)) "$INODES"; }
v_quota_sys() { "$OPS" quota "$QMNT" "$QDEV" "$QID" $((SIZE_MB << 20)) "$INODES"; }
OPS=$BASE/disk-budget-ops
gcc -O2 -o "$OPS" "$(dirname "$0")/disk-budget-ops.c"

# The quota file system, made once (like a worker would at start). Needs CONFIG_QUOTA (+QFMT_V2).
truncate -s 1G "$QIMG"
mkfs.ext4 "${MKFS_OPTS[@]}" -O quota,project -I 256 "$QIMG"
QUOTA_WHY=""
if ! mount -o loop,prjquota,nosuid,nodev "$QIMG" "$QMNT" 2>/dev/null; then
  QUOTA_WHY=$(dmesg | grep -i 'EXT4-fs (loop' | tail -1 | sed 's/^\[[^]]*\] //')
  QUOTA_WHY=${QUOTA_WHY:-mount -o prjquota failed}
  echo "(c) unavailable on this kernel: $QUOTA_WHY" >&2
fi

QDEV=$(findmnt -no SOURCE "$QMNT" || true)

declare -A T
variants=(tmpfs loop quota)
names=(tmpfs loop quota spawn tmpfs_sys quota_sys)
if [ -n "$QUOTA_WHY" ]; then variants=(tmpfs loop); names=(tmpfs loop spawn tmpfs_sys); fi
for n in "${names[@]}"; do T[$n]=""; done
for n in "${names[@]}"; do "v_$n" >/dev/null; done # warm-up (page cache of the tools, module loads)

for ((i = 0; i < REPS; i++)); do
  k=$((i % ${#names[@]}))
  order=("${names[@]:k}" "${names[@]:0:k}")
  for n in "${order[@]}"; do
    if [[ $n == *_sys ]]; then
      T[$n]+="$("v_$n") "
      continue
    fi
    t0=$(now_us)
    "v_$n"
    t1=$(now_us)
    T[$n]+="$((t1 - t0)) "
  done
done

# ---- (d) writes of 32 MiB in small files, and what happens at the limit ----
# As an unprivileged user, like a job: CAP_SYS_RESOURCE would ignore quota limits and ext4's
# reserved blocks.
writer() { # dir files bytes: prints "ok" or the first error
  chown 65534:65534 "$1"
  setpriv --reuid=65534 --regid=65534 --clear-groups perl -X -e 'my ($d,$n,$sz)=@ARGV; my $b="x" x $sz; for my $i (1..$n) { open(my $f, ">", "$d/f$i") or do { print "$!\n"; exit }; (print $f $b) or do { print "$!\n"; exit }; close($f) or do { print "$!\n"; exit }; } print "ok\n";' "$@"
}
setup_d() { # variant -> prints the directory to write into
  case $1 in
    tmpfs) mount -t tmpfs -o "size=${SIZE_MB}M,nr_inodes=$INODES" sbx-bench "$MNT"; echo "$MNT" ;;
    loop) truncate -s "${SIZE_MB}M" "$BASE/loop.img"; mkfs.ext4 "${MKFS_OPTS[@]}" -N "$INODES" "$BASE/loop.img"
      mount -o loop "$BASE/loop.img" "$MNT"; echo "$MNT" ;;
    quota) mkdir "$QMNT/job"; chattr -p "$QID" +P "$QMNT/job"; setquota -P "$QID" 0 $((SIZE_MB * 1024)) 0 "$INODES" "$QMNT"
      echo "$QMNT/job" ;;
  esac
}
teardown_d() {
  case $1 in
    tmpfs) umount "$MNT" ;;
    loop) umount "$MNT"; rm -f "$BASE/loop.img" ;;
    quota) rm -rf "$QMNT/job"; setquota -P "$QID" 0 0 0 0 "$QMNT" ;;
  esac
}
declare -A W S F LIM
for n in "${variants[@]}"; do W[$n]=""; S[$n]=""; F[$n]=""; done
for ((i = 0; i < WREPS; i++)); do
  k=$((i % ${#variants[@]}))
  order=("${variants[@]:k}" "${variants[@]:0:k}")
  for n in "${order[@]}"; do
    d=$(setup_d "$n")
    t0=$(now_us)
    r=$(writer "$d" "$FILES" $((FILE_KB * 1024)))
    t1=$(now_us)
    sync -f "$d"
    t2=$(now_us)
    teardown_d "$n"
    t3=$(now_us)
    [ "$r" = ok ] || { echo "write into $n failed: $r" >&2; exit 1; }
    W[$n]+="$((t1 - t0)) "; S[$n]+="$((t2 - t1)) "; F[$n]+="$((t3 - t2)) "
  done
done
for n in "${variants[@]}"; do # 80 MiB into the 64 MiB budget
  d=$(setup_d "$n")
  LIM[$n]=$(writer "$d" 5120 $((16 * 1024)))
  used=$(du -sk "$d" | cut -f1)
  LIM[$n]+=" after $((used / 1024)) MiB"
  teardown_d "$n"
done

# ---- report ----
stats() { # list of microseconds -> "median p90" in ms
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; p = int(NR * 0.9 + 0.999999); if (p < 1) p = 1;
    printf "%.2f %.2f", m / 1000, v[p] / 1000 }'
}
declare -A spawns=([tmpfs]=2 [loop]=5 [quota]=5 [spawn]=1 [tmpfs_sys]=0 [quota_sys]=0)
read -r sm sp <<<"$(stats "${T[spawn]}")"
echo
echo "P27 disk budget: per-job setup+teardown, $REPS interleaved reps each (ms; kernel $(uname -r), $(nproc) CPUs, loop files on $(findmnt -no FSTYPE -T "$BASE"))"
printf '%-52s %8s %8s %7s %14s\n' variant median p90 spawns "median-spawns"
json="{\"reps\":$REPS,\"writeReps\":$WREPS,\"spawnMedianMs\":$sm"
for n in tmpfs loop quota spawn tmpfs_sys quota_sys; do
  if [[ $n == quota* ]] && [ -n "$QUOTA_WHY" ]; then
    [ "$n" = quota ] || continue
    printf '%-52s %s\n' "(c) ext4 prjquota" "unavailable: $QUOTA_WHY"
    json+=",\"quota\":{\"unavailable\":\"${QUOTA_WHY//\"/\'}\"}"
    continue
  fi
  read -r m p <<<"$(stats "${T[$n]}")"
  net=$(awk -v m="$m" -v s="$sm" -v k="${spawns[$n]}" 'BEGIN { x = m - k * s; printf "%.2f", x < 0 ? 0 : x }')
  case $n in
    tmpfs) label="(a) tmpfs size=${SIZE_MB}M mount+umount" ;;
    loop) label="(b) loop ext4: truncate+mkfs+mount+umount+rm" ;;
    quota) label="(c) ext4 prjquota: mkdir+chattr+setquota+rmdir+clear" ;;
    spawn) label="    one /bin/true spawn (baseline)" ;;
    tmpfs_sys) label="(a') tmpfs: mount(2)+umount2(2) only" ;;
    quota_sys) label="(c') prjquota: mkdir+ioctl+quotactl+rmdir+quotactl" ;;
  esac
  printf '%-52s %8s %8s %7s %14s\n' "$label" "$m" "$p" "${spawns[$n]}" "$([[ $n == spawn || $n == *_sys ]] && echo - || echo "$net")"
  json+=",\"$n\":{\"medianMs\":$m,\"p90Ms\":$p,\"spawns\":${spawns[$n]},\"medianMinusSpawnsMs\":$net}"
done
echo
echo "(d) write ${FILES} x ${FILE_KB} KiB = $((FILES * FILE_KB / 1024)) MiB, $WREPS interleaved reps (ms): write (page cache), syncfs, teardown after it"
printf '%-10s %14s %14s %14s  %s\n' fs write-med/p90 syncfs-med/p90 teardown-med "writing 80 MiB into the ${SIZE_MB} MiB budget"
json+=",\"write\":{"
sep=""
for n in "${variants[@]}"; do
  read -r wm wp <<<"$(stats "${W[$n]}")"
  read -r ym yp <<<"$(stats "${S[$n]}")"
  read -r fm _ <<<"$(stats "${F[$n]}")"
  printf '%-10s %14s %14s %14s  %s\n' "$n" "$wm/$wp" "$ym/$yp" "$fm" "${LIM[$n]}"
  json+="$sep\"$n\":{\"writeMedianMs\":$wm,\"writeP90Ms\":$wp,\"syncMedianMs\":$ym,\"teardownMedianMs\":$fm,\"atLimit\":\"${LIM[$n]}\"}"
  sep=","
done
json+="}}"
echo
echo "$json"
