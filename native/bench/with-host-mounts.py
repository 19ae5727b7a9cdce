# with-host-mounts.py DIR N COMMAND...: stack N bind mounts on DIR, then exec COMMAND in this mount
# namespace. Run under `unshare --mount --propagation private` so the host sees none of them: a
# stand-in for a busy container host, whose mount table holds hundreds of overlays and volumes
# (launcher-bench.ts --host-mounts, native/test/host-mounts.test.ts).
import ctypes, os, sys

libc = ctypes.CDLL(None, use_errno=True)
d, n = sys.argv[1].encode(), int(sys.argv[2])
for _ in range(n):
    if libc.mount(d, d, None, 4096, None) != 0:  # MS_BIND
        sys.exit(f'with-host-mounts: mount: errno {ctypes.get_errno()}')
os.execvp(sys.argv[3], sys.argv[3:])
