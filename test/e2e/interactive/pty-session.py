"""Drive `sbx run -it IMAGE sh` on a real pseudo-terminal (interactive.test.ts).

argv: node, sbx.js, image[, mode]. SBX_HOST / SBX_API_KEY come from the environment. Types into
busybox sh as a user would, and prints one JSON object: what each step saw, the exit code, and the
terminal's modes after sbx exited (raw mode must be undone). Line ends may read \r\r\n: Node's raw
mode keeps ONLCR on our side of the terminal, on top of the job terminal's own CR LF.
Mode `detach`: a ctrl-p not followed by ctrl-q reaches the job, then ctrl-p ctrl-q detaches sbx.
Mode `queued`: `sbx run IMAGE echo ran-after-queue` (not -it) while every slot is taken: its queue
line on the terminal, then the job's output.
"""
import fcntl, json, os, pty, re, select, signal, struct, sys, termios, time

node, sbx, image = sys.argv[1:4]
mode = sys.argv[4] if len(sys.argv) > 4 else "session"
out = {"steps": {}}


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


pid, master = pty.fork()
if pid == 0:
    if mode == "queued":
        os.execv(node, [node, sbx, "run", image, "echo", "ran-after-queue"])
    os.execv(node, [node, sbx, "run", "-it", "-e", "PS1=$ ", image, "sh"])

set_size(master, 33, 101)
buf = b""


def read_until(pattern, timeout=20.0):
    global buf
    deadline = time.time() + timeout
    rx = re.compile(pattern, re.S)
    while True:
        m = rx.search(buf)
        if m:
            seen = buf[: m.end()]
            buf = buf[m.end():]
            return seen.decode("utf8", "replace")
        left = deadline - time.time()
        if left <= 0:
            raise SystemExit(json.dumps({**out, "timeout": pattern.decode(), "screen": buf.decode("utf8", "replace")}))
        r, _, _ = select.select([master], [], [], left)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise SystemExit(json.dumps({**out, "eof_waiting_for": pattern.decode(), "screen": buf.decode("utf8", "replace")}))
            buf += chunk


def typed(text):
    os.write(master, text.encode())


def wait_exit():
    deadline = time.time() + 20
    screen = b""
    while time.time() < deadline:
        if not select.select([master], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    _, status = os.waitpid(pid, 0)
    out["exit"] = os.waitstatus_to_exitcode(status)
    out["screen_at_exit"] = (buf + screen).decode("utf8", "replace")
    attrs = termios.tcgetattr(master)
    out["restored"] = (attrs[3] & (termios.ICANON | termios.ECHO)) == (termios.ICANON | termios.ECHO)


def detach():
    read_until(rb"\$ ")
    typed("cat -v\r")
    read_until(rb"cat -v\r+\n")
    typed("\x10")  # ctrl-p: held back, the start of the detach keys
    time.sleep(0.3)
    typed("a\r")  # not ctrl-q: ctrl-p and a both reach the job
    out["steps"]["passed"] = read_until(rb"\^Pa\r+\n")
    typed("\x03")
    read_until(rb"\$ ")
    typed("\x10\x11")  # ctrl-p ctrl-q: detach
    wait_exit()


def queued():
    out["steps"]["queued"] = read_until(rb"sbx: queued, position 1")
    out["steps"]["ran"] = read_until(rb"ran-after-queue\r+\n", timeout=60.0)
    wait_exit()


def session():
    read_until(rb"\$ ")
    attrs = termios.tcgetattr(master)
    out["raw_while_running"] = (attrs[3] & (termios.ICANON | termios.ECHO)) == 0
    typed("echo hel''lo\r")
    out["steps"]["echo"] = read_until(rb"hello\r+\n.*?\$ ")
    typed("stty size\r")
    out["steps"]["size"] = read_until(rb"stty size\r+\n(\d+ \d+)\r+\n")
    set_size(master, 41, 123)  # the kernel sends SIGWINCH to sbx, which forwards the new size
    time.sleep(0.5)
    typed("stty size\r")
    out["steps"]["resized"] = read_until(rb"stty size\r+\n(\d+ \d+)\r+\n")
    typed("sleep 30\r")
    read_until(rb"sleep 30\r+\n")
    time.sleep(0.5)
    typed("\x03")  # Ctrl-C: a byte for the job's terminal, SIGINT for its foreground process
    read_until(rb"\$ ")
    typed("echo status=$?\r")
    out["steps"]["interrupted"] = read_until(rb"status=\d+\r+\n")
    read_until(rb"\$ ")
    os.kill(pid, signal.SIGINT)  # from outside (kill -INT): goes to the job; sbx and the raw terminal stay
    time.sleep(0.5)
    typed("echo still-here\r")
    out["steps"]["after_sigint"] = read_until(rb"still-here\r+\n")
    typed("exit 3\r")
    wait_exit()


try:
    {"detach": detach, "queued": queued}.get(mode, session)()
finally:
    print(json.dumps(out))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
