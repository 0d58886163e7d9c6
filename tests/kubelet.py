"""A directory updated exactly as the kubelet updates a ConfigMap or Secret volume.

The kubelet's AtomicWriter (kubernetes pkg/volume/util/atomic_writer.go) keeps the real
files in a hidden timestamped directory and shows them through two levels of symlinks::

    <dir>/gateway.yaml -> ..data/gateway.yaml
    <dir>/..data       -> ..2026_12_03_18_00_00.123456789
    <dir>/..2026_12_03_18_00_00.123456789/gateway.yaml      (the file, mode 0644)

An update, in the writer's order (its own step numbers, Kubernetes 1.23 and later): (5) a
new timestamped directory (mode 0755), (6) the whole payload written into it, (7) a
`..data_tmp` symlink to it, (8) `..data_tmp` renamed over `..data` (the one atomic step),
(9) links for new keys created, (10) links for removed keys removed, (11) the old
timestamped directory removed. A reader never sees a half-written
file, but a path it opened before step 11 may vanish after it; the files' mtimes are the
time of writing (`mtime` lets a test give the new ones an older mtime, as a restored or
copied file may carry).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"


class KubeletVolume:
    """A ConfigMap/Secret volume at `root`, holding `files` (key -> content)."""

    def __init__(self, root: Path, files: Mapping[str, str | bytes]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.generations: list[str] = []
        self.update(files)

    def path(self, key: str) -> Path:
        """The user-visible path of a key (a symlink into `..data`)."""
        return self.root / key

    def current(self) -> str | None:
        try:
            return os.readlink(self.root / DATA)
        except FileNotFoundError:
            return None

    def keys(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if not p.name.startswith("..")}

    def update(self, files: Mapping[str, str | bytes], mtime: float | None = None) -> str:
        """Project `files` as the volume's whole new content; returns the new directory."""
        old = self.current()
        # (5) `ioutil.TempDir(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))`
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        while True:
            name = f"{stamp}{random.randrange(10**9)}"
            try:
                (self.root / name).mkdir()
                break
            except FileExistsError:
                continue
        new = self.root / name
        new.chmod(0o755)
        for key, content in files.items():            # (6)
            target = new / key
            data = content.encode() if isinstance(content, str) else content
            target.write_bytes(data)
            target.chmod(0o644)
            if mtime is not None:
                os.utime(target, (mtime, mtime))
        os.symlink(name, self.root / DATA_TMP)         # (7)
        os.rename(self.root / DATA_TMP, self.root / DATA)  # (8) atomic
        for key in files:                              # (9)
            if not os.path.lexists(self.root / key):
                os.symlink(f"{DATA}/{key}", self.root / key)
        for key in self.keys() - set(files):           # (10)
            os.remove(self.root / key)
        if old is not None:                            # (11)
            for f in (self.root / old).iterdir():
                f.unlink()
            (self.root / old).rmdir()
        self.generations.append(name)
        return name
