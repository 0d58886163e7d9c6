"""Which files a loaded config depends on, and a cheap test of whether any of them changed.

Loading a config reads more than the config file: a JWKS file (`jwks: {file: ...}`), secret
files (`shared_secret` and `upstream_credential` as `{file: ...}`). Every reader calls
`note(path)` before it reads; `tracking()` collects what a load noted, so the server watches
exactly the files the loaded config came from, without the config module listing them.

A file is identified by what its path resolves to, not by its mtime alone: a Kubernetes
ConfigMap or Secret volume shows `name -> ..data/name`, `..data -> ..<timestamp>`, and an
update writes a new timestamped directory and renames a `..data_tmp` link over `..data` (the
files it holds may carry any mtime, older ones included). `state` therefore records, for
each path, the resolved path and the resolved file's device, inode, size and mtime (ns), plus
the target of the `..data` link in the path's directory when there is one. A `realpath`, a
`stat` and a `readlink` per file: cheap enough to poll every second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: what the load in progress read, if one is being tracked
_noted: ContextVar[State | None] = ContextVar("extproc_filewatch_noted", default=None)

#: the link the kubelet swaps in a ConfigMap/Secret volume
DATA_LINK = "..data"

FileId = tuple[str, int, int, int, int]              # realpath, dev, inode, size, mtime_ns
#: path -> what it was: a file's FileId (None: missing), a `..data` link's target
State = dict[str, "FileId | str | None"]


def note(path: str | os.PathLike[str]) -> None:
    """Record that the load in progress is about to read `path`, with what it is now (a
    no-op when nothing tracks)."""
    noted = _noted.get()
    if noted is not None:
        noted.update(state([os.path.abspath(path)]))


@contextmanager
def tracking() -> Iterator[State]:
    """Collect, in the dict yielded, every path `note`d inside the block (this context
    only), each with its state when it was noted."""
    noted: State = {}
    token = _noted.set(noted)
    try:
        yield noted
    finally:
        _noted.reset(token)


def file_id(path: str | os.PathLike[str]) -> FileId | None:
    """What `path` is now: the file it resolves to (through every symlink) and that file's
    identity and version; None if it does not resolve to a file."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    return (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def data_link(directory: str) -> str | None:
    """The target of `directory/..data` (a kubelet-managed volume), else None."""
    try:
        return os.readlink(os.path.join(directory, DATA_LINK))
    except OSError:
        return None


def state(paths: Iterable[str]) -> State:
    """The current state of `paths` and of their directories' `..data` links; equal states
    mean nothing a load would read has changed."""
    out: State = {}
    for path in paths:
        out[path] = file_id(path)
        directory = os.path.dirname(path)
        link = data_link(directory)
        if link is not None:
            out[os.path.join(directory, DATA_LINK)] = link
    return out


def _files(s: State) -> frozenset[str]:
    return frozenset(p for p in s if os.path.basename(p) != DATA_LINK)


class Watch:
    """Whether the files a config was loaded from changed since the last look.

    `poll()` reports each change once. While the config file itself does not resolve (an
    editor's delete-then-write) it reports nothing and keeps the old state, so the change is
    seen whole when the file is back. A dependency that is missing is a change like any
    other: the reload it triggers is refused, and retried when the file appears.
    """

    def __init__(self, config_path: str, loaded: State | None = None) -> None:
        self.config_path = os.path.abspath(config_path)
        self._last: State = {}
        self._seen: State | None = None   # a changed state seen once, not yet reported
        self.loaded(loaded if loaded is not None else state([self.config_path]))

    @property
    def paths(self) -> frozenset[str]:
        """The files watched: the config file and what the running config read."""
        return _files(self._last)

    def loaded(self, noted: State) -> None:
        """A load succeeded having read `noted` (from `tracking()`, the state of each file
        when it was read): watch exactly those files from now on, against that state, so a
        change made during the load is still seen."""
        self._last = {**state([self.config_path]), **noted}

    def refused(self, noted: State) -> None:
        """A load was refused: go on watching what the running config read, and also what
        the refused load tried to read (a file it missed may appear), as `noted` found it."""
        self._last = {**self._last, **noted}

    def poll_settled(self) -> list[str]:
        """`poll()`, but a change is reported only once the files have stayed as they are
        for one more look: a file being written in place (`cat > file`, `scp`, an editor
        that does not rename) is not read half-done, when a cut at a line end could be a
        valid config that has lost a route's guards or limits. Replacing a file by a rename
        (what Kubernetes does) is still safest: a writer that pauses longer than a look
        is not told apart from a finished one."""
        if file_id(self.config_path) is None:
            return []
        now = state(self.paths)
        if now == self._last:
            self._seen = None
            return []
        if now != self._seen:
            self._seen = now
            return []
        self._seen = None
        return self.poll()

    def poll(self) -> list[str]:
        """The paths that changed since the last look (each change is reported once); none
        while the config file does not resolve."""
        if file_id(self.config_path) is None:
            return []
        now = state(self.paths)
        if now == self._last:
            return []
        changed = sorted(p for p in now.keys() | self._last.keys()
                         if now.get(p) != self._last.get(p))
        self._last = now
        return changed
