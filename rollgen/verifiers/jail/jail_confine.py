"""Confine the process that runs the code: resource limits, no capabilities, and a seccomp filter.

Seccomp, not Landlock: the namespaces already decide what the code can reach (a root with nothing but
read-only system and Python files, no network, no other processes). What is left is the kernel itself,
whose exposure user namespaces widen, so the filter refuses the calls that attack it or undo the jail:
new namespaces (``unshare``, ``setns``, ``clone`` with ``CLONE_NEW*``), mounts, ``ptrace`` and
``process_vm_*``, keyrings, BPF, perf events, io_uring, userfaultfd, module and kexec loading, and clock,
swap and reboot calls. ``clone3`` answers ENOSYS (its flags are out of a filter's reach; libc falls back
to ``clone``). Other architectures' calls (i386 and x32 on x86_64) kill the process. Landlock would only
repeat the mount namespace's read-only view, needs Linux 5.13 with the LSM enabled at boot, and cannot
filter system calls.
"""

import ctypes
import errno
import resource
import struct

import jail_libc as lc

__all__ = ["apply_limits", "drop_capabilities", "install_seccomp"]

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_CAP_AMBIENT = 38, 22, 24, 28, 47
# SECBIT_NOROOT, _NO_SETUID_FIXUP, _NO_CAP_AMBIENT_RAISE and their locks, and KEEP_CAPS_LOCKED: an exec
# cannot hand capabilities back to uid 0.
_SECUREBITS = 0b11101111

_DENY = {
    "x86_64": [101, 310, 311, 165, 166, 155, 161, 272, 308, 250, 248, 249, 321, 298, 323, 425, 426, 427, 246, 320,
               175, 313, 176, 304, 303, 169, 167, 168, 163, 103, 179, 300, 428, 429, 430, 431, 432, 433, 442, 212,
               153, 164, 227, 159, 305, 170, 171, 172, 173, 134, 156, 154],
    "aarch64": [117, 270, 271, 40, 39, 41, 51, 97, 268, 219, 217, 218, 280, 241, 282, 425, 426, 427, 104, 294,
                105, 273, 106, 265, 264, 142, 224, 225, 89, 116, 60, 262, 428, 429, 430, 431, 432, 433, 442, 18,
                58, 170, 112, 171, 266, 161, 162],
}
_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = 435
_NS_FLAGS = (lc.CLONE_NEWNS | lc.CLONE_NEWCGROUP | lc.CLONE_NEWUTS | lc.CLONE_NEWIPC | lc.CLONE_NEWUSER
             | lc.CLONE_NEWPID | lc.CLONE_NEWNET | 0x80)  # 0x80: CLONE_NEWTIME

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000


def apply_limits(memory: int, cpu_s: int, file_size: int, files: int, processes: "int | None") -> None:
    limits = [(resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_FSIZE, file_size),
              (resource.RLIMIT_NOFILE, files), (resource.RLIMIT_CORE, 0)]
    if processes is not None:
        limits.append((resource.RLIMIT_NPROC, processes))
    for kind, value in limits:
        hard = value + 1 if kind == resource.RLIMIT_CPU else value  # SIGXCPU first, then SIGKILL
        resource.setrlimit(kind, (value, hard))


def drop_capabilities(required: bool) -> None:
    """Empty every capability set and the bounding set, and lock securebits so no exec restores them."""
    try:
        lc.prctl(PR_SET_SECUREBITS, _SECUREBITS, what="prctl(PR_SET_SECUREBITS)")
        for cap in range(64):
            if lc.libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 and ctypes.get_errno() != errno.EINVAL:
                lc.check(-1, f"prctl(PR_CAPBSET_DROP, {cap})")
        lc.prctl(PR_CAP_AMBIENT, 4, what="prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        data = (ctypes.c_uint32 * 6)()
        lc.syscall("capset", header, data)
    except OSError:
        if required:
            raise


def _filter(machine: str) -> bytes:
    """The BPF program: (code, jt, jf, k) instructions; jumps to the shared returns are patched at the end."""
    prog: "list[list]" = [[_LD_W_ABS, 0, 0, 4], [_JEQ, 1, 0, _ARCH[machine]], [_RET, 0, 0, _KILL_PROCESS],
                          [_LD_W_ABS, 0, 0, 0]]
    if machine == "x86_64":
        prog.append([_JGE, "kill", 0, 0x40000000])  # the x32 ABI
    for nr in _DENY[machine]:
        prog.append([_JEQ, "deny", 0, nr])
    prog.append([_JEQ, "enosys", 0, _CLONE3])
    prog += [[_JEQ, 0, "allow", _CLONE[machine]], [_LD_W_ABS, 0, 0, 16], [_JSET, "deny", "allow", _NS_FLAGS]]
    returns = {"allow": _ALLOW, "deny": _ERRNO | errno.EPERM, "enosys": _ERRNO | errno.ENOSYS,
               "kill": _KILL_PROCESS}
    at = {}
    for label, value in returns.items():
        at[label] = len(prog)
        prog.append([_RET, 0, 0, value])
    out = b""
    for i, (code, jt, jf, k) in enumerate(prog):
        jt, jf = (at[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf))
        out += struct.pack("=HBBI", code, jt, jf, k)
    return out


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp() -> None:
    """no_new_privs, then the filter (inherited by every child, kept across exec)."""
    lc.prctl(PR_SET_NO_NEW_PRIVS, 1, what="prctl(PR_SET_NO_NEW_PRIVS)")
    if lc.MACHINE not in _DENY:
        raise OSError(errno.ENOSYS, f"no seccomp filter for {lc.MACHINE}; the code sandbox supports x86_64 and aarch64")
    raw = _filter(lc.MACHINE)
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _Prog(len(raw) // 8, ctypes.cast(buf, ctypes.c_void_p))
    lc.prctl(PR_SET_SECCOMP, 2, ctypes.addressof(prog), what="prctl(PR_SET_SECCOMP)")
