"""The system calls the jail needs that ``os`` lacks (Python 3.11 has no ``os.unshare`` or ``mount``), via ctypes.

Every call raises ``OSError`` with the errno and the call named, so a setup failure reads as
``unshare(CLONE_NEWUSER|...): [Errno 1] Operation not permitted``.
"""

import ctypes
import os

__all__ = ["CLONE_NEWCGROUP", "CLONE_NEWIPC", "CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWUSER",
           "CLONE_NEWUTS", "MACHINE", "MS_BIND", "MS_NODEV", "MS_NOEXEC", "MS_NOSUID", "MS_PRIVATE", "MS_RDONLY",
           "MS_REC", "MS_REMOUNT", "check", "libc", "mount", "mount_setattr_ro", "pivot_root", "prctl",
           "sethostname", "syscall", "umount_detach", "unshare"]

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4

MACHINE = os.uname().machine
# Syscall numbers without a libc wrapper in every glibc this runs on: x86_64 and the generic table (aarch64).
_NR = {"x86_64": {"pivot_root": 155, "mount_setattr": 442, "capset": 126},
       "aarch64": {"pivot_root": 41, "mount_setattr": 442, "capset": 91}}

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def syscall(name: str, *args: object) -> int:
    table = _NR.get(MACHINE)
    if table is None:
        raise OSError(38, f"{name}: the jail knows no syscall numbers for {MACHINE}")
    return check(libc.syscall(ctypes.c_long(table[name]), *args), name)


def unshare(flags: int, what: str) -> None:
    check(libc.unshare(ctypes.c_int(flags)), f"unshare({what})")


def mount(source: "str | None", target: str, fstype: "str | None", flags: int, data: "str | None" = None) -> None:
    def b(s: "str | None") -> "bytes | None":
        return None if s is None else os.fsencode(s)

    check(libc.mount(b(source), b(target), b(fstype), ctypes.c_ulong(flags), b(data)),
          f"mount({source} -> {target}, {fstype})")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def mount_setattr_ro(path: str) -> None:
    """Make the mount at ``path`` and every mount below it read-only, nosuid and nodev (Linux 5.12+); on an
    older kernel, remount each mount below ``path`` (from /proc/self/mountinfo) read-only instead."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    try:
        syscall("mount_setattr", ctypes.c_int(-100), os.fsencode(path), ctypes.c_uint(AT_RECURSIVE),
                ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
        return
    except OSError as e:
        if e.errno != 38:  # ENOSYS
            raise
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        if point == path or point.startswith(path.rstrip("/") + "/"):
            flags = os.statvfs(point).f_flag & (MS_NOEXEC | 1024 | 2048)  # keep noexec/noatime/nodiratime
            mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | flags)


def pivot_root(new_root: str, put_old: str) -> None:
    syscall("pivot_root", os.fsencode(new_root), os.fsencode(put_old))


def umount_detach(target: str) -> None:
    check(libc.umount2(os.fsencode(target), ctypes.c_int(MNT_DETACH)), f"umount2({target})")


def sethostname(name: str) -> None:
    raw = name.encode()
    check(libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, what: str = "prctl") -> int:
    return check(libc.prctl(option, arg2, arg3, 0, 0), what)
