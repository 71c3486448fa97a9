"""The jail's namespaces and file system: a new user, PID, mount, network, IPC, UTS and cgroup namespace, and a
read-only root that holds only the system libraries, the Python installation and a private ``/tmp``.

Two steps, because the new PID namespace applies to children only:

1. ``isolate()`` (the launcher, in the host's namespaces): opens every directory to show (``O_PATH``, while it
   can still reach them), unshares, and maps uid/gid 0 inside to the caller outside, or to nobody (65534)
   when the caller is root, so root outside is never root inside and ``RLIMIT_NPROC`` applies.
2. ``build_root()`` (PID 1 of the new namespace): mounts a tmpfs root, binds the opened directories into it
   read-only (``mount_setattr``, recursively), adds ``/dev/{null,zero,full,random,urandom}``, a ``/proc`` of
   the new PID namespace and a size-capped tmpfs ``/tmp``, then ``pivot_root``s into it and drops the old root.
"""

import os
import sys

import jail_libc as lc

__all__ = ["NOBODY", "Root", "build_root", "fresh_tmp", "isolate"]

NOBODY = 65534
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_FILES = ("/etc/ld.so.cache",)
_DEVICES = ("null", "zero", "full", "random", "urandom")
_NAMESPACES = (lc.CLONE_NEWUSER | lc.CLONE_NEWNS | lc.CLONE_NEWPID | lc.CLONE_NEWNET | lc.CLONE_NEWIPC
               | lc.CLONE_NEWUTS | lc.CLONE_NEWCGROUP)
_NS_NAMES = "CLONE_NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS|NEWCGROUP"


class Root:
    """What the new root will show: (fd, path, is_file) binds and (path, target) symlinks."""

    def __init__(self) -> None:
        self.binds: "list[tuple[int, str, bool]]" = []
        self.links: "list[tuple[str, str]]" = []

    def bind(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_PATH)
        except OSError:
            return
        self.binds.append((fd, path, not os.path.isdir(path)))

    def close(self) -> None:
        for fd, _, _ in self.binds:
            os.close(fd)
        self.binds.clear()


def _python_dirs(root: Root) -> "list[str]":
    """The interpreter's prefixes (stdlib, lib-dynload, site-packages), outermost only, minus what /usr holds.
    A prefix reached through a symlink gets that symlink too, so ``sys.path`` reads the same inside."""
    prefixes = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    for p in prefixes:
        if p == "/tmp" or p.startswith("/tmp/") or os.path.realpath(p).startswith("/tmp/"):
            raise OSError(22, f"the Python installation at {p} would be hidden by the sandbox's private /tmp: "
                              "use one installed elsewhere (the code verifier's `python:` option)")
        if os.path.realpath(p) != p:
            root.links.append((p, os.path.realpath(p)))
    kept: "list[str]" = []
    for d in sorted({os.path.realpath(p) for p in prefixes}):
        if d != "/" and not any(d == k or d.startswith(k + "/") for k in (*kept, *_SYSTEM)):
            kept.append(d)
    return kept


def isolate() -> Root:
    """Enter new namespaces, open what the root will show (still as the caller, who can reach it), then map
    uid/gid 0 inside to the caller outside, or to nobody when the caller is root."""
    if os.geteuid() == 0:
        return _isolate_as_root()
    uid, gid = os.geteuid(), os.getegid()
    lc.unshare(_NAMESPACES, _NS_NAMES)
    root = _open_root()
    _write_maps("self", uid, gid)
    return root


def _open_root() -> Root:
    root = Root()
    for path in _SYSTEM:
        if os.path.islink(path):
            root.links.append((path, os.readlink(path)))
        elif os.path.isdir(path):
            root.bind(path)
    for path in (*_python_dirs(root), *_FILES, *(f"/dev/{d}" for d in _DEVICES)):
        root.bind(path)
    return root


def _write_maps(pid: str, uid: int, gid: int, deny_setgroups: bool = True) -> None:
    maps = (("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1"))
    for name, text in ((("setgroups", "deny"),) if deny_setgroups else ()) + maps:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


def _mapped(id_: int, kind: str) -> bool:
    """Whether ``id_`` exists in our own user namespace (not so in a container that maps only root)."""
    with open(f"/proc/self/{kind}") as f:
        return any(int(first) <= id_ < int(first) + int(count) for first, _, count in (ln.split() for ln in f))


def _isolate_as_root() -> Root:
    """Only a process in the parent namespace may map 0 inside to nobody outside: a forked helper writes the
    maps (to 0 itself where nobody does not exist, i.e. inside a container's user namespace that maps only
    its root), then we drop root's groups and become the mapped 0."""
    go_r, go_w = os.pipe()
    me = os.getpid()
    helper = os.fork()
    if helper == 0:
        os.close(go_w)
        ok = os.read(go_r, 1) == b"1"
        try:
            if ok:
                outside = NOBODY if _mapped(NOBODY, "uid_map") and _mapped(NOBODY, "gid_map") else 0
                _write_maps(str(me), outside, outside, deny_setgroups=False)
        except OSError:
            os._exit(1)
        os._exit(0 if ok else 2)
    os.close(go_r)
    try:
        lc.unshare(_NAMESPACES, _NS_NAMES)
        root = _open_root()
    except OSError:
        os.write(go_w, b"0")
        os.waitpid(helper, 0)
        raise
    os.write(go_w, b"1")
    os.close(go_w)
    _, status = os.waitpid(helper, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(1, "writing the uid/gid map of the sandbox's user namespace failed")
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    return root


def build_root(root: Root, tmp_mb: int) -> None:
    """Mount the new root and pivot into it (PID 1 of the new namespaces). Closes the bind fds."""
    lc.mount(None, "/", None, lc.MS_REC | lc.MS_PRIVATE)
    new = next(d for d in ("/tmp", "/mnt", "/var/tmp", "/dev") if os.path.isdir(d))
    lc.mount("tmpfs", new, "tmpfs", lc.MS_NOSUID | lc.MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
    for fd, path, is_file in root.binds:
        target = new + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if is_file:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o444))
        else:
            os.makedirs(target, exist_ok=True)
        lc.mount(f"/proc/self/fd/{fd}", target, None, lc.MS_BIND | lc.MS_REC)
        if not path.startswith("/dev/"):
            lc.mount_setattr_ro(target)
    root.close()
    for path, target in (*root.links, ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
                         ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"),
                         ("/dev/shm", "/tmp")):
        try:
            os.makedirs(os.path.dirname(new + path), exist_ok=True)
            os.symlink(target, new + path)
        except OSError:  # a prefix's symlink inside a directory already bound read-only: it is there already
            pass
    os.makedirs(new + "/proc", exist_ok=True)
    lc.mount("proc", new + "/proc", "proc", lc.MS_NOSUID | lc.MS_NODEV | lc.MS_NOEXEC)
    os.makedirs(new + "/tmp", exist_ok=True)
    fresh_tmp(tmp_mb, new + "/tmp", replace=False)
    os.chdir(new)
    lc.pivot_root(".", ".")
    lc.umount_detach(".")
    os.chdir("/")
    lc.mount(None, "/", None, lc.MS_REMOUNT | lc.MS_BIND | lc.MS_RDONLY | lc.MS_NOSUID | lc.MS_NODEV)
    lc.sethostname("sandbox")


def fresh_tmp(tmp_mb: int, path: str = "/tmp", replace: bool = True) -> None:
    """An empty, size-capped tmpfs at ``path`` (the previous one, if any, is dropped)."""
    if replace:
        lc.umount_detach(path)
    lc.mount("tmpfs", path, "tmpfs", lc.MS_NOSUID | lc.MS_NODEV, f"size={tmp_mb}m,mode=1777")
