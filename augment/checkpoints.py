"""The output folder of a run: claiming it, the lock, and the checkpoints that make ``--resume`` work.

A run works in ``OUT/.work/``: every finished generation batch is appended to a per-step JSONL file
there (one JSON line, flushed and fsynced), keyed by the run's fingerprint, so a run that crashes or is
killed pays on ``--resume`` only for the batches it had not finished. A torn last line (a kill in the
middle of a write) is cut off. ``OUT/.work/lock`` (an ``flock``) keeps two runs out of one folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError
from .io import write_atomic
from .record import Record

logger = logging.getLogger(__name__)

OUTPUTS = ("augmented.jsonl", "rejected.jsonl", "manifest.json")
WORK = ".work"
LOCK = "lock"


def check_out_dir(out: Path, *, overwrite: bool, resume: bool, locked: bool = False) -> str:
    """Refuse to touch an existing output folder unless asked; raise before any work is done.

    Returns what the run does there: ``"start"`` (a new run), ``"resume"`` (an unfinished run's
    checkpoints are reused) or ``"finished"`` (``--resume`` on a completed run: the caller checks that
    it is the same run and reports it as done). ``--resume`` where nothing ran yet starts the run, so
    rerunning the same command after a kill always works. A folder another live run holds the lock
    of is refused (``locked``: this process holds it).
    """
    if not out.exists():
        parent = next(p for p in out.absolute().parents if p.exists())
        try:  # a probe, so an unwritable place is refused now, not after the models have loaded
            tempfile.TemporaryDirectory(prefix=".augment-probe-", dir=parent).cleanup()
        except OSError as exc:
            raise ConfigError(f"{out}: cannot create the output folder ({parent}: {exc.strerror})") from None
        return "start"
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"{out}: the output folder is not writable")
    if not locked:
        RunLock(out).check()
    if resume and (out / WORK / "state.json").exists():
        return "resume"
    if resume and (out / "manifest.json").exists() and not overwrite:
        return "finished"
    if resume and not any(p.name != WORK for p in out.iterdir()):
        return "start"  # killed before the first checkpoint: nothing to reuse
    if _leftovers(out) and not overwrite:
        raise ConfigError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
    return "start"


class WorkDir:
    """Append-only JSONL checkpoints of finished generation batches, reusable per seed id.

    Each line records the seed ids a batch covered and the candidates it made, so a resume reuses
    exactly the seeds that were finished, whatever the batch size of either run.
    """

    def __init__(self, out: Path, fingerprint: str, resume: bool) -> None:
        self.dir = out / WORK
        state = self.dir / "state.json"
        if resume:
            found = json.loads(state.read_text(encoding="utf-8")).get("fingerprint")
            if found != fingerprint:
                raise ConfigError(
                    f"{out}: the unfinished run there used other inputs or settings "
                    "(pass --overwrite to start again)"
                )
            for path in self.dir.glob("gen-*.jsonl"):
                _cut_torn_tail(path)
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            for p in self.dir.iterdir():  # an old run's checkpoints go; the lock this run holds stays
                if p.name == LOCK:
                    continue
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            write_atomic(state, json.dumps({"fingerprint": fingerprint}))

    def _path(self, step: str) -> Path:
        return self.dir / f"gen-{step}.jsonl"

    def done(self, step: str) -> dict[str, list[Record]]:
        """Seed id -> the candidates already generated from it in this step."""
        path = self._path(step)
        if not path.exists():
            return {}
        by_seed: dict[str, list[Record]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            for sid in entry["seed_ids"]:
                by_seed.setdefault(sid, [])
            for row in entry["records"]:
                rec = Record.from_dict(row)
                by_seed[rec.parent_ids[0]].append(rec)
        return by_seed

    def append(self, step: str, seed_ids: Sequence[str], records: Sequence[Record]) -> None:
        entry = {"seed_ids": list(seed_ids), "records": [r.to_dict() for r in records]}
        with self._path(step).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line that a kill left half-written, so new lines start on a line of their own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        logger.warning("%s: dropping a half-written checkpoint line; that batch is redone", path)
        with path.open("r+b") as fh:
            fh.truncate(keep)


class RunLock:
    """An exclusive lock on an output folder (``OUT/.work/lock``, fcntl.flock), so two runs given the
    same ``-o`` never interleave: the second is refused at once. The kernel releases a flock when its
    process dies, so a lock left by a killed run never blocks ``--resume``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / WORK / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise ConfigError(f"{self.out}: cannot write there ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode("ascii", "replace").strip()
                os.close(fd)
                raise self.busy(holder) from None
            try:  # the holder before us may have removed the file while we waited for it: lock anew
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def busy(self, holder: str) -> ConfigError:
        return ConfigError(
            f"{self.out}: another augment run (pid {holder or 'unknown'}) is writing to this folder; "
            "wait for it to finish or choose another -o"
        )

    def check(self) -> None:
        """Refuse now, before any model loads, when a live run holds the lock (takes nothing)."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise self.busy(os.read(fd, 64).decode("ascii", "replace").strip()) from None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim(out: Path, locks: list[RunLock], *, clear: bool) -> None:
    """Make the output folder, take its lock (released by the caller's ``finally``), delete the
    temporary files a killed run left, and, when ``clear``, the outputs of the run it replaces."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    lock = RunLock(out)
    lock.acquire()
    locks.append(lock)
    _remove_torn_outputs(out)
    if clear:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)


def _remove_torn_outputs(out: Path) -> None:
    """Delete the temporary files of outputs a killed run was writing (``write_atomic``'s); the run
    holding the lock is the only writer, so none of them is being written now."""
    for name in OUTPUTS:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _leftovers(out: Path) -> list[Path]:
    """What a folder holds besides a lock file: a ``.work`` with nothing but the lock does not count."""
    items = []
    for p in out.iterdir():
        if p.name == WORK and p.is_dir() and all(q.name == LOCK for q in p.iterdir()):
            continue
        items.append(p)
    return items
