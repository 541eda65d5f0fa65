"""A hostile database user racing the root cleanup: swaps a folder it owns for a link to a victim folder.

watch TARGET VICTIM CONTROL: waits for TARGET's mtime to move (the cleanup's first removal inside it), then renames
TARGET away and puts a link to VICTIM in its place; writes CONTROL/swapped when it did.
toggle TARGET VICTIM CONTROL: swaps TARGET and the link back and forth, blindly, until CONTROL/stop exists; writes
CONTROL/swapped with the number of swaps.
Either mode writes CONTROL/ready once it is watching, and puts the folder back (when it can) before it exits.
"""
import os
import sys
import time

mode, target, victim, control = sys.argv[1:5]
moved = target + ".moved"
stop = os.path.join(control, "stop")


def mark(name, text=""):
    with open(os.path.join(control, name), "w") as f:
        f.write(text)


def restore():
    try:
        if os.path.islink(target):
            os.unlink(target)
        if os.path.isdir(moved) and not os.path.lexists(target):
            os.rename(moved, target)
    except OSError:
        pass


deadline = time.monotonic() + 60
if mode == "watch":
    first = os.lstat(target).st_mtime_ns
    mark("ready")
    while time.monotonic() < deadline and not os.path.exists(stop):
        try:
            now = os.lstat(target).st_mtime_ns
        except FileNotFoundError:
            break
        if now != first:
            try:
                os.rename(target, moved)
                os.symlink(victim, target)
                mark("swapped", "1")
            except OSError:
                pass
            break
    while time.monotonic() < deadline and not os.path.exists(stop):
        time.sleep(0.001)
elif mode == "toggle":
    swaps = 0
    mark("ready")
    while time.monotonic() < deadline and not os.path.exists(stop):
        try:
            os.rename(target, moved)
            os.symlink(victim, target)
            swaps += 1
            time.sleep(0.0005)
            os.unlink(target)
            os.rename(moved, target)
        except OSError:
            restore()
        time.sleep(0.0005)
    mark("swapped", str(swaps))
restore()
