"""The body of a fake CLI executable (see ``asm_nb.testing.fake_cli``).

Standard library only, and self-contained: ``install_fake_cli`` copies this file's source into the
generated executable, so the fake starts fast and does not need ``asm_nb`` importable.

One invocation: take the next step of the script (the last step repeats), record argv, stdin,
cwd, pid and the selected environment variables as one JSON line, replay the step's stdout
(optionally line by line with a delay), write its stderr, optionally keep running until killed,
then exit with its exit code or kill itself with its signal.
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time


def _next_invocation(cfg):
    """Atomically count invocations (concurrent fakes share one state file)."""
    with open(cfg["state_path"], "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read().strip()
        n = int(text) if text.isdigit() else 0
        f.seek(0)
        f.truncate()
        f.write(str(n + 1))
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)
    return n


def _record(cfg, entry):
    with open(cfg["record_path"], "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(entry) + "\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)


def _signum(name):
    if name is None:
        return None
    if isinstance(name, int):
        return name
    name = str(name).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    return int(getattr(signal, name))


def _stdout_bytes(step):
    if step.get("stdout_path"):
        with open(step["stdout_path"], "rb") as f:
            return f.read()
    text = step.get("stdout_text") or ""
    return text.encode("utf-8")


def _write(data):
    out = sys.stdout.buffer
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        pass


def main(config_path):
    with open(config_path) as f:
        cfg = json.load(f)
    steps = cfg["script"] or [{}]
    n = _next_invocation(cfg)
    step = steps[min(n, len(steps) - 1)]

    for name in step.get("ignore_signals") or []:
        signum = _signum(name)
        if signum is not None:
            signal.signal(signum, signal.SIG_IGN)

    stdin = ""
    if step.get("read_stdin", True) and not sys.stdin.isatty():
        try:
            stdin = sys.stdin.buffer.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            stdin = ""

    child_pid = None
    if step.get("spawn_child"):
        # a grandchild in the same process group: a cancel must take it down too
        child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.2)"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child_pid = child.pid

    env_keys = cfg.get("record_env") or []
    _record(cfg, {"invocation": n, "argv": [cfg.get("name") or os.path.basename(sys.argv[0])] + sys.argv[1:],
                  "stdin": stdin, "cwd": os.getcwd(), "pid": os.getpid(), "pgid": os.getpgid(0),
                  "child_pid": child_pid, "env": {k: os.environ.get(k) for k in env_keys},
                  "step": step.get("label")})

    if step.get("start_delay_ms"):
        time.sleep(step["start_delay_ms"] / 1000)
    data = _stdout_bytes(step)
    delay = (step.get("line_delay_ms") or 0) / 1000
    if delay > 0:
        for line in data.splitlines(keepends=True):
            _write(line)
            time.sleep(delay)
    else:
        _write(data)

    err = step.get("stderr") or ""
    if err:
        try:
            sys.stderr.write(err)
            sys.stderr.flush()
        except BrokenPipeError:
            pass

    if step.get("hang"):
        # keep running (a long tool call) until killed; bounded so a broken test never leaks forever
        deadline = time.monotonic() + (step.get("hang_ms") or 30_000) / 1000
        while time.monotonic() < deadline:
            time.sleep(0.05)

    sig = _signum(step.get("signal"))
    if sig is not None:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the signal is delivered asynchronously
    code = step.get("exit_code")
    return 0 if code is None else int(code)
