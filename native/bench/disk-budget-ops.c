// The syscall-only cost of the per-job steps of disk-budget-bench.sh (what a native launcher
// would do, without spawning mount(8), chattr(1) or setquota(8)). Prints the microseconds taken.
//
//   disk-budget-ops tmpfs <mountpoint> <bytes> <inodes>
//       mount("tmpfs", size=, nr_inodes=) + umount2
//   disk-budget-ops quota <parent-dir> <block-device> <project-id> <bytes> <inodes>
//       mkdir + FS_IOC_FSSETXATTR (projid, PROJINHERIT) + quotactl(Q_SETQUOTA, PRJQUOTA) + rmdir
//       + quotactl(Q_SETQUOTA) with zero limits
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/quota.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef PRJQUOTA
#define PRJQUOTA 2
#endif

static double nowUs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int die(const char* what) {
  fprintf(stderr, "%s: %s\n", what, strerror(errno));
  return 1;
}

static int setLimit(const char* dev, unsigned id, unsigned long long bytes, unsigned long long inodes) {
  struct dqblk q;
  memset(&q, 0, sizeof q);
  q.dqb_bhardlimit = bytes / 1024;  // in 1 KiB quota blocks
  q.dqb_ihardlimit = inodes;
  q.dqb_valid = QIF_LIMITS;
  return quotactl(QCMD(Q_SETQUOTA, PRJQUOTA), dev, (int)id, (caddr_t)&q);
}

int main(int argc, char** argv) {
  if (argc == 5 && !strcmp(argv[1], "tmpfs")) {
    char opts[128];
    snprintf(opts, sizeof opts, "size=%s,nr_inodes=%s,mode=0755", argv[3], argv[4]);
    double t0 = nowUs();
    if (mount("sbx-bench", argv[2], "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0) return die("mount");
    if (umount2(argv[2], 0) != 0) return die("umount2");
    printf("%.0f\n", nowUs() - t0);
    return 0;
  }
  if (argc == 7 && !strcmp(argv[1], "quota")) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/job-ops", argv[2]);
    unsigned id = (unsigned)atoi(argv[4]);
    double t0 = nowUs();
    if (mkdir(dir, 0755) != 0) return die("mkdir");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return die("open");
    struct fsxattr fa;
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fa) != 0) return die("FS_IOC_FSGETXATTR");
    fa.fsx_projid = id;
    fa.fsx_xflags |= FS_XFLAG_PROJINHERIT;
    if (ioctl(fd, FS_IOC_FSSETXATTR, &fa) != 0) return die("FS_IOC_FSSETXATTR");
    close(fd);
    if (setLimit(argv[3], id, strtoull(argv[5], NULL, 10), strtoull(argv[6], NULL, 10)) != 0) return die("quotactl");
    if (rmdir(dir) != 0) return die("rmdir");
    if (setLimit(argv[3], id, 0, 0) != 0) return die("quotactl clear");
    printf("%.0f\n", nowUs() - t0);
    return 0;
  }
  fprintf(stderr, "usage: see the comment at the top of %s\n", __FILE__);
  return 2;
}
