/*
 * The kernel floor of a launch (issue 13: "launches per second at concurrency 8 at least 3×"): the
 * kernel objects every sbx job gets, made and torn down by the least code that can make them, with
 * no launcher around them. What no launcher with this isolation can go below on the machine at hand.
 * kernel-floor.ts builds it and the rootfs; throughput-bench.ts runs it beside the two launchers.
 *
 *   kernel-floor --rootfs DIR --state DIR --parent NAME --command PATH [--launches N] [--concurrency C] [--warm-up W]
 *                [--without net,cgroups,mounts]
 *
 * Prints one JSON line, as launch-throughput.ts does: launches, concurrency, launches_per_s and
 * machine_cpu_ms_per_launch (/proc/stat: every process, kernel thread and interrupt; the teardown
 * the kernel finishes in its workers included), with the command, what --without left out and the
 * cgroup version. Exits 1 with a message on the first failure.
 *
 * Per launch, C threads each doing one launch at a time:
 *  - cgroups, v1: a group in each of memory, pids, cpu, cpuacct, freezer and devices under <parent>,
 *    with the memory (+swap) limit, pids.max and the CPU quota written; the device allow-list and
 *    oom_control come from the parent, written once, as the launcher does (cgroup_v1.cc). v2: one
 *    group with memory.max, memory.swap.max, pids.max and cpu.max;
 *  - clone (CLONE_VM | CLONE_VFORK) into new pid, mount, uts, ipc and network namespaces; the child
 *    joins the groups, makes its cgroup namespace, brings lo up, sets the hostname, mounts the job's
 *    tree as native/src/mnt.cc does (scratch tmpfs, overlay, proc, /dev from a template with devpts,
 *    shm and mqueue, read-only sysfs, the masked and read-only paths), pivot_root, and execs the
 *    command as pid 1;
 *  - the parent waits for it, reads the usage (cpuacct.usage and memory.max_usage_in_bytes, or
 *    cpu.stat and memory.peak) and removes the groups.
 * --without leaves out the network namespace, the groups, or the mounts (the command is then run
 * from the rootfs by chroot), to show what each costs.
 * Left out, so the floor is lower than any launcher that keeps them: the user namespace and the
 * idmapped layers, an init process (a second exec), seccomp, capabilities, rlimits, stdio, the v2
 * device program, timeouts and status reporting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUPS 6
#define STACK_BYTES (256 * 1024)
#define PATH_BYTES 512

static const char* const kV1Controllers[MAX_GROUPS] = {"memory", "pids", "cpu", "cpuacct", "freezer", "devices"};
/* as native/src/mnt.cc kMaskedPaths, kReadOnlyPaths */
static const char* const kMaskedPaths[] = {
    "proc/acpi", "proc/asound", "proc/interrupts", "proc/kcore", "proc/keys", "proc/latency_stats",
    "proc/sched_debug", "proc/scsi", "proc/timer_list", "proc/timer_stats", "sys/devices/virtual/powercap",
    "sys/firmware", "sys/kernel/security", "sys/kernel/debug", "sys/fs/bpf",
};
static const char* const kReadOnlyPaths[] = {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"};
/* as native/src/cgroup.cc kAllowedDevices (P17) */
static const char* const kDeviceRules[] = {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                           "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"};
static const unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;

static struct {
  const char* rootfs;
  const char* state;
  const char* parent;
  const char* command;
  long launches, concurrency, warmUp;
  int v2;
  int net, cgroups, mounts;  // what each launch makes (--without)
  int memsw;  // v1: swap is accounted, memory+swap is limited as well (cgroup.cc writeMemory())
  char overlayData[PATH_BYTES * 2];
  const char* maskDirs[32];
  int nMaskDirs;
  const char* maskFiles[32];
  int nMaskFiles;
  const char* readOnly[8];
  int nReadOnly;
} g;

static atomic_long nextLaunch;
static long launchEnd;  // launches with an index below it run in the current phase
static atomic_int failed;

/* Reports the first failure and exits; a thread failing after it waits for that exit. */
static void die(const char* what, const char* path, int err) {
  if (atomic_exchange(&failed, 1))
    for (;;) pause();
  fprintf(stderr, "kernel-floor: %s %s: %s\n", what, path ? path : "", strerror(err));
  exit(1);
}

static int writeFile(const char* path, const char* value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = write(fd, value, strlen(value));
  int e = n < 0 ? errno : 0;
  close(fd);
  return n < 0 ? -e : 0;
}

static void mustWrite(const char* path, const char* value) {
  int r = writeFile(path, value);
  if (r != 0) die("write", path, -r);
}

/* <dir>/<name> into out (PATH_BYTES); main() refuses paths that could not fit */
static void file(char* out, const char* dir, const char* name) {
  if ((size_t)snprintf(out, PATH_BYTES, "%s/%s", dir, name) >= PATH_BYTES) die("path too long", dir, ENAMETOOLONG);
}

static void writeIn(const char* dir, const char* name, const char* value) {
  char p[PATH_BYTES];
  file(p, dir, name);
  mustWrite(p, value);
}

static long readNumber(const char* dir, const char* name) {
  char path[PATH_BYTES], buf[512];
  file(path, dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", path, errno);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n < 0) die("read", path, errno);
  close(fd);
  buf[n] = 0;
  const char* digits = buf;
  while (*digits && (*digits < '0' || *digits > '9')) digits++;  // cpu.stat: "usage_usec N"
  return atol(digits);
}

static int exists(const char* p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* ---- the job's groups ---- */

struct Groups {
  char dirs[MAX_GROUPS][PATH_BYTES];
  int n;
};

static void groupPath(char* out, const char* controller, const char* name) {
  if (g.v2) snprintf(out, PATH_BYTES, "/sys/fs/cgroup/%s%s%s", g.parent, name ? "/" : "", name ? name : "");
  else snprintf(out, PATH_BYTES, "/sys/fs/cgroup/%s/%s%s%s", controller, g.parent, name ? "/" : "", name ? name : "");
}

static void makeGroups(struct Groups* gs, const char* name) {
  gs->n = g.v2 ? 1 : MAX_GROUPS;
  for (int i = 0; i < gs->n; i++) {
    groupPath(gs->dirs[i], kV1Controllers[i], name);
    if (mkdir(gs->dirs[i], 0755) != 0) die("mkdir", gs->dirs[i], errno);
  }
  if (g.v2) {
    writeIn(gs->dirs[0], "memory.max", "67108864");
    writeIn(gs->dirs[0], "memory.swap.max", "0");
    writeIn(gs->dirs[0], "pids.max", "64");
    writeIn(gs->dirs[0], "cpu.max", "100000 100000");
    return;
  }
  writeIn(gs->dirs[0], "memory.limit_in_bytes", "67108864");
  if (g.memsw) writeIn(gs->dirs[0], "memory.memsw.limit_in_bytes", "67108864");
  writeIn(gs->dirs[1], "pids.max", "64");
  writeIn(gs->dirs[2], "cpu.cfs_quota_us", "100000");
}

static void readUsage(const struct Groups* gs) {
  if (g.v2) {
    readNumber(gs->dirs[0], "cpu.stat");
    readNumber(gs->dirs[0], "memory.peak");
    return;
  }
  readNumber(gs->dirs[3], "cpuacct.usage");
  readNumber(gs->dirs[0], "memory.max_usage_in_bytes");
}

static void removeGroups(const struct Groups* gs) {
  for (int i = 0; i < gs->n; i++) {
    for (int attempt = 0; rmdir(gs->dirs[i]) != 0; attempt++) {
      if (errno != EBUSY || attempt >= 1000) die("rmdir", gs->dirs[i], errno);
      usleep(100);  // the job's last task is still leaving the group
    }
  }
}

static void prepareParent(void) {
  char dir[PATH_BYTES];
  if (g.v2) {
    groupPath(dir, NULL, NULL);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) die("mkdir", dir, errno);
    mustWrite("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids +cpu");
    writeIn(dir, "cgroup.subtree_control", "+memory +pids +cpu");
    return;
  }
  for (int i = 0; i < MAX_GROUPS; i++) {
    groupPath(dir, kV1Controllers[i], NULL);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) die("mkdir", dir, errno);
  }
  groupPath(dir, "memory", NULL);
  writeIn(dir, "memory.oom_control", "0");
  g.memsw = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes");
  groupPath(dir, "devices", NULL);
  writeIn(dir, "devices.deny", "a");
  for (size_t i = 0; i < sizeof kDeviceRules / sizeof *kDeviceRules; i++) writeIn(dir, "devices.allow", kDeviceRules[i]);
}

static void removeParent(void) {
  char dir[PATH_BYTES];
  for (int i = 0; i < (g.v2 ? 1 : MAX_GROUPS); i++) {
    groupPath(dir, kV1Controllers[i], NULL);
    for (int attempt = 0; rmdir(dir) != 0 && errno == EBUSY && attempt < 100; attempt++) usleep(10000);
  }
}

/* ---- the state dir: the init layer and the /dev template (as native/src/mnt.cc prepareStateDir) ---- */

static void mkdirMode(const char* p, mode_t mode) {
  if (mkdir(p, mode) != 0 && errno != EEXIST) die("mkdir", p, errno);
  if (chmod(p, mode) != 0) die("chmod", p, errno);
}

static void prepareState(void) {
  static const struct { const char* name; unsigned major, minor; } nodes[] = {
      {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  static const char* const links[][2] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
                                         {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}};
  char p[PATH_BYTES];
  const char* dirs[][2] = {{"mnt", "0700"}, {"initlayer", "0755"}, {"initlayer/proc", "0555"}, {"initlayer/sys", "0555"},
                           {"initlayer/dev", "0755"}, {"initlayer/tmp", "1777"}, {"dev", "0755"}, {"dev/pts", "0755"},
                           {"dev/shm", "1777"}, {"dev/mqueue", "0755"}};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    snprintf(p, sizeof p, "%s/%s", g.state, dirs[i][0]);
    mkdirMode(p, (mode_t)strtol(dirs[i][1], NULL, 8));
  }
  for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
    snprintf(p, sizeof p, "%s/dev/%s", g.state, nodes[i].name);
    if (mknod(p, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) != 0 && errno != EEXIST) die("mknod", p, errno);
    if (chmod(p, 0666) != 0) die("chmod", p, errno);
  }
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    snprintf(p, sizeof p, "%s/dev/%s", g.state, links[i][0]);
    if (symlink(links[i][1], p) != 0 && errno != EEXIST) die("symlink", p, errno);
  }
  snprintf(g.overlayData, sizeof g.overlayData, "lowerdir=%s/initlayer:%s,upperdir=upper,workdir=work", g.state, g.rootfs);
  // the masks for this kernel: the paths present on the host (mnt.cc hostMasks())
  for (size_t i = 0; i < sizeof kMaskedPaths / sizeof *kMaskedPaths; i++) {
    snprintf(p, sizeof p, "/%s", kMaskedPaths[i]);
    struct stat st;
    if (stat(p, &st) != 0) continue;
    if (S_ISDIR(st.st_mode) && g.nMaskDirs < 32) g.maskDirs[g.nMaskDirs++] = kMaskedPaths[i];
    else if (!S_ISDIR(st.st_mode) && g.nMaskFiles < 32) g.maskFiles[g.nMaskFiles++] = kMaskedPaths[i];
  }
  glob_t found;  // kept for the process: g.maskDirs points into it
  if (glob("/sys/devices/system/cpu/cpu*/thermal_throttle", GLOB_NOSORT, NULL, &found) == 0)
    for (size_t i = 0; i < found.gl_pathc && g.nMaskDirs < 32; i++) g.maskDirs[g.nMaskDirs++] = found.gl_pathv[i] + 1;
  for (size_t i = 0; i < sizeof kReadOnlyPaths / sizeof *kReadOnlyPaths; i++) {
    snprintf(p, sizeof p, "/%s", kReadOnlyPaths[i]);
    if (exists(p)) g.readOnly[g.nReadOnly++] = kReadOnlyPaths[i];
  }
}

/* ---- the child: runs on the launching thread's memory (CLONE_VM), that thread suspended until it execs ---- */

struct Child {
  const struct Groups* groups;
  const char* failedStep;
  int err;
};

/* Records the step and its errno for the parent, and ends the child (never returns). */
static void childFail(struct Child* c, const char* step) {
  c->failedStep = step;
  c->err = errno;
  syscall(SYS_exit_group, 127);
}

static int bringLoUp(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) return 0;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  int ok = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  close(s);
  return ok;
}

/* The job's tree as native/src/mnt.cc builds it, then pivot_root into it. */
static void mountTree(struct Child* c) {
  char p[PATH_BYTES];
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) childFail(c, "mount private");
  snprintf(p, sizeof p, "%s/mnt", g.state);
  if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "size=67108864,nr_inodes=16384,mode=0700") != 0) childFail(c, "scratch tmpfs");
  if (chdir(p) != 0 || mkdir("upper", 0755) != 0 || mkdir("work", 0700) != 0 || mkdir("root", 0755) != 0 || mkdir("mask", 0555) != 0)
    childFail(c, "scratch dirs");
  if (mount("overlay", "root", "overlay", MS_NOSUID | MS_NODEV, g.overlayData) != 0) childFail(c, "overlay");
  if (mount("tmpfs", "mask", "tmpfs", kNoSuidDevExec | MS_RDONLY, "size=0,nr_inodes=1,mode=0555") != 0) childFail(c, "mask tmpfs");
  if (chdir("root") != 0) childFail(c, "chdir root");
  if (mount("proc", "proc", "proc", kNoSuidDevExec, NULL) != 0) childFail(c, "proc");
  snprintf(p, sizeof p, "%s/dev", g.state);
  if (mount(p, "dev", NULL, MS_BIND | MS_REC, NULL) != 0 ||
      mount(NULL, "dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) != 0)
    childFail(c, "dev template");
  if (mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") != 0) childFail(c, "devpts");
  if (mount("shm", "dev/shm", "tmpfs", kNoSuidDevExec, "mode=1777,size=67108864") != 0) childFail(c, "shm");
  if (mount("mqueue", "dev/mqueue", "mqueue", kNoSuidDevExec, NULL) != 0) childFail(c, "mqueue");
  if (mount("sysfs", "sys", "sysfs", kNoSuidDevExec | MS_RDONLY, NULL) != 0) childFail(c, "sysfs");
  for (int i = 0; i < g.nMaskDirs; i++) mount("../mask", g.maskDirs[i], NULL, MS_BIND, NULL);  // optional, as in mnt.cc
  for (int i = 0; i < g.nMaskFiles; i++) mount("dev/null", g.maskFiles[i], NULL, MS_BIND, NULL);
  for (int i = 0; i < g.nReadOnly; i++) {
    if (mount(g.readOnly[i], g.readOnly[i], NULL, MS_BIND | MS_REC, NULL) == 0)
      mount(NULL, g.readOnly[i], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kNoSuidDevExec, NULL);
  }
  if (syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) childFail(c, "pivot_root");
}

static int child(void* arg) {
  struct Child* c = arg;
  char p[PATH_BYTES];
  for (int i = 0; i < c->groups->n; i++) {
    file(p, c->groups->dirs[i], g.v2 ? "cgroup.procs" : "tasks");
    int r = writeFile(p, "0");
    if (r != 0) errno = -r, childFail(c, "join the groups");
  }
  if (unshare(CLONE_NEWCGROUP) != 0) childFail(c, "unshare(CLONE_NEWCGROUP)");
  if (g.net && !bringLoUp()) childFail(c, "lo up");
  if (sethostname("bench", 5) != 0) childFail(c, "sethostname");
  if (g.mounts) mountTree(c);
  else if (chroot(g.rootfs) != 0 || chdir("/") != 0) childFail(c, "chroot");
  char* argv[] = {(char*)g.command, NULL};
  char* envp[] = {"PATH=/bin", NULL};
  execve(g.command, argv, envp);
  childFail(c, "execve");
  return 127;
}

/* ---- one slot: launches one at a time until the phase's launches are taken ---- */

static void launchOnce(char* stack, long index, long slot) {
  struct Groups groups;
  char name[64];
  snprintf(name, sizeof name, "floor-%ld-%ld", slot, index);
  groups.n = 0;
  if (g.cgroups) makeGroups(&groups, name);
  struct Child c = {&groups, NULL, 0};
  int flags = CLONE_VM | CLONE_VFORK | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (g.net ? CLONE_NEWNET : 0) | SIGCHLD;
  pid_t pid = clone(child, stack + STACK_BYTES, flags, &c);
  if (pid < 0) die("clone", NULL, errno);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) die("waitpid", NULL, errno);
  if (c.failedStep) die(c.failedStep, NULL, c.err);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("the command's exit status", g.command, EIO);
  if (g.cgroups) {
    readUsage(&groups);
    removeGroups(&groups);
  }
}

static void* slotLoop(void* arg) {
  long slot = (long)arg;
  char* stack = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) die("mmap", NULL, errno);
  for (;;) {
    long i = atomic_fetch_add(&nextLaunch, 1);
    if (i >= launchEnd) break;
    launchOnce(stack, i, slot);
  }
  munmap(stack, STACK_BYTES);
  return NULL;
}

static void runPhase(long launches) {
  launchEnd = atomic_load(&nextLaunch) + launches;
  pthread_t threads[256];
  long n = g.concurrency;
  for (long i = 0; i < n; i++)
    if (pthread_create(&threads[i], NULL, slotLoop, (void*)i) != 0) die("pthread_create", NULL, errno);
  for (long i = 0; i < n; i++) pthread_join(threads[i], NULL);
}

/* /proc/stat's first line: everything but idle and iowait, in ms */
static double machineBusyMs(void) {
  FILE* f = fopen("/proc/stat", "r");
  if (!f) die("open", "/proc/stat", errno);
  unsigned long long v[8] = {0};
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
    die("parse", "/proc/stat", EINVAL);
  fclose(f);
  return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static double nowSeconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const char* argValue(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  if (!fallback) {
    fprintf(stderr, "kernel-floor: %s is required\n", name);
    exit(2);
  }
  return fallback;
}

static long positive(int argc, char** argv, const char* name, const char* fallback, long max) {
  const char* v = argValue(argc, argv, name, fallback);
  char* end;
  long n = strtol(v, &end, 10);
  if (*end || n < 1 || n > max) {
    fprintf(stderr, "kernel-floor: %s must be an integer from 1 to %ld, not \"%s\"\n", name, max, v);
    exit(2);
  }
  return n;
}

int main(int argc, char** argv) {
  g.rootfs = argValue(argc, argv, "--rootfs", NULL);
  g.state = argValue(argc, argv, "--state", NULL);
  g.parent = argValue(argc, argv, "--parent", NULL);
  g.command = argValue(argc, argv, "--command", NULL);
  g.launches = positive(argc, argv, "--launches", "800", 1000000);
  g.concurrency = positive(argc, argv, "--concurrency", "8", 256);
  g.warmUp = positive(argc, argv, "--warm-up", "200", 1000000);
  g.net = g.cgroups = g.mounts = 1;
  const char* without = argValue(argc, argv, "--without", "");
  if (strlen(without) > 64) {
    fprintf(stderr, "kernel-floor: --without takes net, cgroups and mounts\n");
    exit(2);
  }
  for (const char* w = without; *w;) {
    size_t len = strcspn(w, ",");
    if (len == 3 && strncmp(w, "net", 3) == 0) g.net = 0;
    else if (len == 7 && strncmp(w, "cgroups", 7) == 0) g.cgroups = 0;
    else if (len == 6 && strncmp(w, "mounts", 6) == 0) g.mounts = 0;
    else {
      fprintf(stderr, "kernel-floor: --without takes net, cgroups and mounts, not \"%.*s\"\n", (int)len, w);
      exit(2);
    }
    w += len + (w[len] == ',');
  }
  if (strlen(g.rootfs) > 200 || strlen(g.state) > 200 || strlen(g.parent) > 100) {
    fprintf(stderr, "kernel-floor: --rootfs and --state at most 200 characters, --parent 100\n");
    exit(2);
  }
  if (exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) g.v2 = 0;
  else if (exists("/sys/fs/cgroup/cgroup.controllers")) g.v2 = 1;
  else die("no cgroup v1 memory hierarchy and no cgroup v2 at", "/sys/fs/cgroup", ENOENT);
  prepareState();
  if (g.cgroups) prepareParent();
  runPhase(g.warmUp);
  double busy0 = machineBusyMs(), t0 = nowSeconds();
  runPhase(g.launches);
  double seconds = nowSeconds() - t0, busy = machineBusyMs() - busy0;
  if (g.cgroups) removeParent();
  printf("{\"command\":\"%s\",\"without\":\"%s\",\"launches\":%ld,\"concurrency\":%ld,\"cgroup\":\"%s\",\"launches_per_s\":%ld,\"machine_cpu_ms_per_launch\":%.2f}\n",
         g.command, without, g.launches, g.concurrency, g.v2 ? "v2" : "v1", (long)(g.launches / seconds + 0.5), busy / (double)g.launches);
  return 0;
}
