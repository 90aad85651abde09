"""save in a shared folder: atomic, never follows a planted link, a new file's permissions,
names as long as the file system allows, and concurrent saves that always leave a whole model."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minnet
import minnet.io

ROOT = Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and links")


def model(seed: int = 0) -> minnet.Sequential:
    rng = np.random.default_rng(seed)
    return minnet.Sequential(
        [minnet.Linear(3, 4, rng=rng), minnet.ReLU(), minnet.Linear(4, 1, rng=rng)]
    )


def same_weights(a: minnet.Sequential, b: minnet.Sequential) -> bool:
    return all(
        x.tobytes() == y.tobytes()
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    return model(1).save(tmp_path / "model")


def only_file_left(path: Path) -> None:
    """``path`` is the only file in its folder: no temporary file left behind."""
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left"), KeyboardInterrupt()])
def test_a_save_that_fails_midway_leaves_the_old_file(old_file, monkeypatch, error) -> None:
    before = old_file.read_bytes()
    real_fsync = os.fsync

    def failing_fsync(handle: int) -> None:
        real_fsync(handle)
        raise error

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(type(error)):
        model(2).save(old_file)
    assert old_file.read_bytes() == before
    only_file_left(old_file)


def test_a_failed_rename_leaves_the_old_file(old_file, monkeypatch) -> None:
    before = old_file.read_bytes()

    def failing_replace(source, target) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(target))

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        model(2).save(old_file)
    assert old_file.read_bytes() == before
    only_file_left(old_file)


def test_a_refused_model_writes_nothing(tmp_path: Path) -> None:
    net = model()
    net.layers[0].W.value[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        net.save(tmp_path / "model")
    assert not list(tmp_path.iterdir())


def test_save_into_a_missing_folder_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        model().save(tmp_path / "missing" / "model")


@posix_only
def test_a_symlink_at_the_path_is_replaced_not_followed(tmp_path: Path) -> None:
    """Someone links the path to a file of the saver's: save replaces the link, the file it
    points to is untouched (as np.savez refuses to write through it under protected_symlinks)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "model.safetensors"
    path.symlink_to(victim)
    model().save(path)
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and same_weights(minnet.load(path), model())


@posix_only
def test_a_symlink_planted_at_the_temporary_name_is_never_followed(tmp_path, monkeypatch) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(minnet.io.saving.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".minnet-planted.tmp").symlink_to(victim)
    path = model().save(tmp_path / "model")
    assert victim.read_text() == "precious"
    assert (tmp_path / ".minnet-planted.tmp").is_symlink()  # left alone
    assert same_weights(minnet.load(path), model())


PERMISSIONS = """
import os, sys, stat
sys.path.insert(0, sys.argv[1])
import minnet
os.umask(int(sys.argv[2], 8))
model = minnet.Sequential([minnet.Linear(2, 1, rng=0)])
path = model.save(sys.argv[3])
print(oct(stat.S_IMODE(os.stat(path).st_mode)))
"""


@posix_only
@pytest.mark.parametrize("umask", ["022", "077", "002"])
def test_a_new_file_gets_the_permissions_of_any_new_file(tmp_path: Path, umask: str) -> None:
    command = [sys.executable, "-c", PERMISSIONS, str(ROOT), umask, str(tmp_path / "model")]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    assert printed == oct(0o666 & ~int(umask, 8))


@posix_only
def test_save_never_reads_or_sets_the_umask(tmp_path: Path, monkeypatch) -> None:
    """Setting the umask to read it is a race with other threads creating files."""

    def no_umask(mask: int) -> int:
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", no_umask)
    model().save(tmp_path / "model")


@posix_only
def test_replacing_a_setuid_file_keeps_neither_the_bit_nor_the_mode(old_file: Path) -> None:
    os.chmod(old_file, 0o4755)
    model(2).save(old_file)
    mode = stat.S_IMODE(os.stat(old_file).st_mode)
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IXUSR)
    assert os.stat(old_file).st_uid == os.getuid()


def test_names_as_long_as_the_file_system_allows(tmp_path: Path) -> None:
    longest = os.pathconf(tmp_path, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    name = "m" * (longest - len(minnet.io.SUFFIX))
    path = model().save(tmp_path / name)
    assert path.name == name + ".safetensors" and same_weights(minnet.load(path), model())
    with pytest.raises(OSError, match="too long"):
        model().save(tmp_path / (name + "x"))
    assert len(list(tmp_path.iterdir())) == 1


SAVER = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import minnet
seed, path = int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(seed)
width = 29 + seed  # the two models differ in their tensor tables too
layers = [minnet.Linear(20, width, rng=rng), minnet.ReLU(), minnet.Linear(width, 1, rng=rng)]
model = minnet.Sequential(layers)
for _ in range(100):
    model.save(path)
"""


def test_two_processes_saving_100_times_always_leave_a_whole_model(tmp_path: Path) -> None:
    path = tmp_path / "shared.safetensors"
    models = {}
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        width = 29 + seed
        models[seed] = minnet.Sequential(
            [minnet.Linear(20, width, rng=rng), minnet.ReLU(), minnet.Linear(width, 1, rng=rng)]
        )
    models[1].save(path)
    savers = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(ROOT), str(seed), str(path)])
        for seed in (1, 2)
    ]
    seen, loads = set(), 0
    while any(saver.poll() is None for saver in savers):
        loaded = minnet.load(path)
        matches = [seed for seed, m in models.items() if same_weights(loaded, m)]
        assert len(matches) == 1
        seen.add(matches[0])
        loads += 1
    assert [saver.wait() for saver in savers] == [0, 0]
    assert any(same_weights(minnet.load(path), m) for m in models.values())
    only_file_left(path)
    print(f"{loads} loads while saving, models seen: {sorted(seen)}")
