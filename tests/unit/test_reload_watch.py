"""Config reloads the way Kubernetes delivers files: the kubelet's `..data` swap, seen by
`filewatch.Watch` (config file and every file the config read), by the server's watch loop,
and by `Secret` (rotation by the file's identity, the last good value kept)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from extproc import filewatch, httpclient, metrics, server
from extproc.auth import credentials
from extproc.auth.credentials import Secret
from extproc.auth.policy import Authenticate
from extproc.servicer import Processor
from tests.kubelet import DATA, DATA_TMP, KubeletVolume

REPO = Path(__file__).resolve().parents[2]
OLD = 946684800.0    # 2000-01-01: an mtime older than any file written by the test


def jwks(kid: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    d = RSAAlgorithm.to_jwk(key, as_dict=True)
    d["kid"] = kid
    return json.dumps({"keys": [d]})


def gateway(jwks_file: str | None = None, key_file: str | None = None,
            route: str = "chat") -> str:
    data: dict[str, Any] = {"routes": [{"name": route, "provider": "openai"}]}
    if jwks_file:
        data["auth"] = {"jwt_providers": {"corp": {
            "issuer": "https://idp.example.com/", "audiences": ["gw"],
            "jwks": {"file": jwks_file}}}}
        data["routes"][0]["auth"] = {"jwt": ["corp"]}
    if key_file:
        data["routes"][0]["upstream_credential"] = {"file": key_file}
    return yaml.safe_dump(data)


@pytest.fixture
def mono(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake monotonic clock for credentials.Secret."""
    now = [10_000.0]
    monkeypatch.setattr(credentials, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


# --- the helper does what the kubelet does ------------------------------------------------

def test_the_volume_is_laid_out_and_swapped_as_the_kubelet_does(tmp_path: Path) -> None:
    vol = KubeletVolume(tmp_path / "cm", {"gateway.yaml": "a: 1\n", "extra": "x"})
    first = vol.current()
    assert first is not None and first.startswith("..") and not os.path.isabs(first)
    assert os.readlink(vol.path("gateway.yaml")) == f"{DATA}/gateway.yaml"
    assert (tmp_path / "cm" / first / "gateway.yaml").read_text() == "a: 1\n"
    assert oct((tmp_path / "cm" / first).stat().st_mode & 0o777) == "0o755"
    second = vol.update({"gateway.yaml": "a: 2\n", "new": "n"})
    assert vol.current() == second != first
    assert not (tmp_path / "cm" / first).exists()                 # the old dir is gone
    assert not os.path.lexists(tmp_path / "cm" / DATA_TMP)
    assert vol.keys() == {"gateway.yaml", "new"}                  # `extra` removed
    assert vol.path("gateway.yaml").read_text() == "a: 2\n"
    assert os.path.realpath(vol.path("gateway.yaml")) == str(tmp_path / "cm" / second /
                                                             "gateway.yaml")


# --- filewatch.Watch ----------------------------------------------------------------------

def loaded_watch(path: Path, read_also: tuple[Path, ...] = ()) -> filewatch.Watch:
    with filewatch.tracking() as read:
        filewatch.note(path)
        for p in read_also:
            filewatch.note(p)
    return filewatch.Watch(str(path), read)


def test_a_kubelet_swap_is_seen_even_with_an_older_mtime_and_the_same_size(
        tmp_path: Path) -> None:
    vol = KubeletVolume(tmp_path / "cm", {"gateway.yaml": "a: 1\n"})
    watch = loaded_watch(vol.path("gateway.yaml"))
    assert watch.poll() == []
    vol.update({"gateway.yaml": "a: 2\n"}, mtime=OLD)             # same size, older mtime
    changed = watch.poll()
    assert str(vol.path("gateway.yaml")) in changed
    assert str(tmp_path / "cm" / DATA) in changed
    assert watch.poll() == []                                      # reported once


def test_a_swap_of_another_key_of_the_volume_is_seen(tmp_path: Path) -> None:
    # the ..data link moves for any key: a reload is cheap, missing a change is not
    vol = KubeletVolume(tmp_path / "cm", {"gateway.yaml": "a: 1\n", "other": "1"})
    watch = loaded_watch(vol.path("gateway.yaml"))
    vol.update({"gateway.yaml": "a: 1\n", "other": "2"})
    assert watch.poll() != []


def test_dependencies_in_other_volumes_are_watched(tmp_path: Path) -> None:
    cm = KubeletVolume(tmp_path / "cm", {"gateway.yaml": "a: 1\n"})
    sec = KubeletVolume(tmp_path / "secret", {"jwks.json": "{}"})
    watch = loaded_watch(cm.path("gateway.yaml"), (sec.path("jwks.json"),))
    assert watch.paths == {str(cm.path("gateway.yaml")), str(sec.path("jwks.json"))}
    sec.update({"jwks.json": "{}"}, mtime=OLD)                     # same bytes, new file
    assert str(sec.path("jwks.json")) in watch.poll()
    assert watch.poll() == []


def test_a_plain_file_rewritten_or_renamed_over_is_seen(tmp_path: Path) -> None:
    f = tmp_path / "gateway.yaml"
    f.write_text("a: 1\n")
    watch = loaded_watch(f)
    tmp = tmp_path / "gateway.yaml.tmp"
    tmp.write_text("a: 2\n")
    st = f.stat()
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))             # same mtime and size
    os.rename(tmp, f)
    assert watch.poll() == [str(f)]
    f.write_text("a: 33\n")
    assert watch.poll() == [str(f)]


def test_a_missing_config_file_waits_and_a_missing_dependency_is_a_change(
        tmp_path: Path) -> None:
    f, dep = tmp_path / "gateway.yaml", tmp_path / "jwks.json"
    f.write_text("a: 1\n")
    dep.write_text("{}")
    watch = loaded_watch(f, (dep,))
    f.unlink()
    assert watch.poll() == []                  # an editor's delete-then-write: wait
    f.write_text("a: 2\n")
    assert watch.poll() == [str(f)]
    dep.unlink()
    assert watch.poll() == [str(dep)]          # reload, refused, retried when it is back
    dep.write_text("{}")
    assert watch.poll() == [str(dep)]


def test_a_change_during_the_load_is_still_seen(tmp_path: Path) -> None:
    vol = KubeletVolume(tmp_path / "cm", {"gateway.yaml": "a: 1\n"})
    with filewatch.tracking() as read:
        filewatch.note(vol.path("gateway.yaml"))                  # state as the load read it
        vol.update({"gateway.yaml": "a: 2\n"})                    # swapped while loading
    watch = filewatch.Watch(str(vol.path("gateway.yaml")), read)
    assert watch.poll() != []


def test_a_refused_load_also_watches_what_it_tried_to_read(tmp_path: Path) -> None:
    f = tmp_path / "gateway.yaml"
    f.write_text("a: 1\n")
    watch = loaded_watch(f)
    missing = tmp_path / "jwks.json"
    with filewatch.tracking() as read:
        filewatch.note(f)
        filewatch.note(missing)                                    # the load fails on it
    watch.refused(read)
    assert watch.poll() == []
    missing.write_text("{}")                                       # it appears: retry
    assert watch.poll() == [str(missing)]
    with filewatch.tracking() as read:
        filewatch.note(f)
    watch.loaded(read)                                             # a config without it
    assert watch.paths == {str(f)}


def test_note_outside_tracking_does_nothing(tmp_path: Path) -> None:
    filewatch.note(tmp_path / "x")
    with filewatch.tracking() as read:
        pass
    assert read == {}


# --- what a real config load reads --------------------------------------------------------

def test_a_config_load_notes_its_jwks_and_secret_files(tmp_path: Path) -> None:
    cm = KubeletVolume(tmp_path / "cm", {"gateway.yaml": gateway(
        "jwks.json", str(tmp_path / "secret" / "openai"))})
    (tmp_path / "cm" / "jwks.json").symlink_to(tmp_path / "keys.json")
    (tmp_path / "keys.json").write_text(jwks("k1"))
    KubeletVolume(tmp_path / "secret", {"openai": "sk-1\n"})
    with filewatch.tracking() as read:
        server._load(str(cm.path("gateway.yaml")))
    watch = filewatch.Watch(str(cm.path("gateway.yaml")), read)
    assert watch.paths == {str(cm.path("gateway.yaml")), str(tmp_path / "cm" / "jwks.json"),
                           str(tmp_path / "secret" / "openai")}
    assert read[str(tmp_path / "cm" / "jwks.json")][0] == str(tmp_path / "keys.json")


def reloads(result: str) -> float:
    return metrics.RELOADS.labels(result)._value.get()   # type: ignore[attr-defined]


async def wait_for(predicate: Any, seconds: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def kid_known(processor: Processor, route: str, kid: str) -> bool:
    auth = next(p for p in processor.config.routes[route].policies
                if isinstance(p, Authenticate))
    assert auth.auth is not None
    return bool(auth.auth.jwt[0].keys.keyset.has_kid(kid))


async def test_the_watch_loop_reloads_on_swaps_and_refuses_a_bad_one(tmp_path: Path) -> None:
    keys = KubeletVolume(tmp_path / "keys", {"jwks.json": jwks("k1")})
    cm = KubeletVolume(tmp_path / "cm", {"gateway.yaml": gateway(
        str(tmp_path / "keys" / "jwks.json"), route="one")})
    path = str(cm.path("gateway.yaml"))
    with filewatch.tracking() as read:
        processor = Processor(server._load(path))
    watch = filewatch.Watch(path, read)
    task = asyncio.get_running_loop().create_task(
        server._watch(processor, path, watch, interval=0.01))
    try:
        ok, refused = reloads("ok"), reloads("refused")
        cm.update({"gateway.yaml": gateway(str(tmp_path / "keys" / "jwks.json"),
                                           route="two")}, mtime=OLD)
        await wait_for(lambda: "two" in processor.config.routes)
        assert reloads("ok") == ok + 1
        cm.update({"gateway.yaml": "routes: [{name: x, provider: gemni}]\n"})
        await wait_for(lambda: reloads("refused") == refused + 1)
        await asyncio.sleep(0.05)
        assert reloads("refused") == refused + 1                  # not retried in a loop
        assert set(processor.config.routes) == {"two"}            # the running one stays
        cm.update({"gateway.yaml": gateway(str(tmp_path / "keys" / "jwks.json"),
                                           route="three")})
        await wait_for(lambda: "three" in processor.config.routes)
        # a dependency in another volume: its swap reloads the config, new keys included
        assert kid_known(processor, "three", "k1")
        keys.update({"jwks.json": jwks("k2")}, mtime=OLD)
        await wait_for(lambda: kid_known(processor, "three", "k2"))
        assert not kid_known(processor, "three", "k1")
    finally:
        task.cancel()
        await httpclient.close()   # this test's loop's session, as the server does at exit


# --- Secret rotation ----------------------------------------------------------------------

def test_a_secret_rotated_by_a_kubelet_swap_is_read_whatever_its_mtime(
        tmp_path: Path, mono: list[float]) -> None:
    vol = KubeletVolume(tmp_path / "secret", {"openai": "sk-aaaa\n"})
    s = Secret(file=str(vol.path("openai")))
    assert s.load() == "sk-aaaa"
    vol.update({"openai": "sk-bbbb\n"}, mtime=OLD)                # older mtime, same size
    assert s.value() == "sk-aaaa"                                  # checked once a second
    mono[0] += 1
    assert s.value() == "sk-bbbb"
    vol.update({"openai": "sk-cccc\n"}, mtime=OLD)                 # and the very same mtime
    mono[0] += 1
    assert s.value() == "sk-cccc"


def test_a_secret_read_that_races_the_swap_keeps_the_last_good_value(
        tmp_path: Path, mono: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    vol = KubeletVolume(tmp_path / "secret", {"openai": "sk-aaaa"})
    s = Secret(file=str(vol.path("openai")))
    s.load()
    # the file resolves when looked at, but is gone when read (the old dir just removed)
    real_read = Path.read_text

    def vanished(self: Path, *a: Any, **k: Any) -> str:
        raise FileNotFoundError(2, "No such file or directory")

    vol.update({"openai": "sk-bbbb"})
    monkeypatch.setattr(Path, "read_text", vanished)
    mono[0] += 1
    assert s.value() == "sk-aaaa"
    monkeypatch.setattr(Path, "read_text", real_read)
    mono[0] += 1
    assert s.value() == "sk-bbbb"                                  # retried at the next check
    # the volume briefly without the key (a key removed, then put back)
    vol.update({"other": "x"})
    mono[0] += 1
    assert s.value() == "sk-bbbb"
    vol.update({"openai": ""})                                     # back, empty
    mono[0] += 1
    assert s.value() == "sk-bbbb"
    vol.update({"openai": "sk-cccc"})
    mono[0] += 1
    assert s.value() == "sk-cccc"


def test_a_change_is_reported_settled_only_once_the_files_stay_as_they_are(
        tmp_path: Path) -> None:
    """What the server's watcher reloads from: a file caught while it is written in place is
    not read until it has stayed the same for one more look (a cut at a line end can be a
    valid config that has lost a route's guards)."""
    f = tmp_path / "gateway.yaml"
    f.write_text("a: 1\n")
    watch = loaded_watch(f)
    assert watch.poll_settled() == []
    with f.open("a") as w:
        w.write("b: 2\n")          # the writer has begun...
    assert watch.poll_settled() == []
    with f.open("a") as w:
        w.write("c: 3\n")          # ... and goes on: still not settled
    assert watch.poll_settled() == []
    assert watch.poll_settled() == [str(f)]     # the same as the last look: reported
    assert watch.poll_settled() == []           # once
    f.write_text("d: 4\n")
    assert watch.poll_settled() == []
    assert watch.poll_settled() == [str(f)]


async def test_a_reload_onto_the_development_credentials_is_refused_unless_allowed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What `serve` refuses to start on, a reload does not swap in: a config edited to trust
    the published development key would open the running gateway to anyone."""
    f = tmp_path / "gateway.yaml"
    f.write_text(gateway())
    processor = Processor(server._load(str(f)))
    (tmp_path / "keys.json").write_text((REPO / "config" / "dev-jwks.json").read_text())
    f.write_text(gateway(str(tmp_path / "keys.json"), route="dev"))
    refused = reloads("refused")
    assert server._reload(processor, str(f)) is False
    assert set(processor.config.routes) == {"chat"} and reloads("refused") == refused + 1
    assert "trusts the development credentials" in caplog.text
    assert "JWT provider 'corp'" in caplog.text
    caplog.clear()
    assert server._reload(processor, str(f), allow_dev=True) is True
    assert set(processor.config.routes) == {"dev"}
    # allowed, it is said: the warning serve logs at start, on the reload too
    assert "trusts published development credentials" in caplog.text
