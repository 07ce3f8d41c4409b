"""`hub <args>` that SIGKILLs itself just before its Nth filesystem operation inside a folder.

    python tests/media_crash_runner.py N DIR hub-args...

An audit hook (PEP 578) counts opens, renames, removals and mkdirs under DIR (the hub's own
data directory: the files it writes, the folders it fsyncs) and kills the process at the Nth,
so a test can stop a sync at any step without a hook in the hub's code. N = 0 never kills; the
count is printed on stderr at exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

from hub.cli import main

EVENTS = frozenset({"open", "os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"})


def install(kill_at: int, root: str) -> None:
    count = 0

    def hook(event: str, args: tuple) -> None:
        nonlocal count
        if event not in EVENTS or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.fsdecode(args[0])
        if not path.startswith(root):
            return
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    atexit.register(lambda: print(f"filesystem events: {count}", file=sys.stderr))
    sys.addaudithook(hook)


if __name__ == "__main__":
    install(int(sys.argv[1]), os.path.abspath(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
