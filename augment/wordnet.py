"""WordNet for NLTK, built from the operating system's WordNet files, with no download.

NLTK wants its data under ``<NLTK_DATA>/corpora/wordnet/`` and refuses symbolic links out of that
folder, and Debian's ``wordnet-base`` lacks the ``lexnames`` file NLTK reads. So the files are copied
into the engine's cache once, and ``lexnames`` is generated from WordNet's own ``lexnames(5WN)`` page.
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
from functools import lru_cache
from pathlib import Path

from .cache import cache_dir  # the cache root lives in augment.cache; re-exported for older imports
from .errors import BackendError

logger = logging.getLogger(__name__)

SYSTEM_DIRS = (Path("/usr/share/wordnet"), Path("/usr/local/share/wordnet"))
LEXNAMES_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")
REQUIRED = ("data.noun", "index.noun", "data.verb", "index.verb", "data.adj", "index.adj")
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def system_wordnet() -> Path | None:
    for d in SYSTEM_DIRS:
        if all((d / f).exists() for f in REQUIRED):
            return d
    return None


def _lexnames_text() -> str:
    with gzip.open(LEXNAMES_PAGE, "rt", encoding="utf-8", errors="replace") as fh:
        page = fh.read()
    lines = []
    for m in re.finditer(r"^(\d\d)\t(\w+)\.(\w+)", page, flags=re.MULTILINE):
        num, pos, name = m.groups()
        lines.append(f"{num}\t{pos}.{name}\t{_POS_NUMBER[pos]}")
    if len(lines) < 40:
        raise BackendError(f"{LEXNAMES_PAGE}: could not read the lexicographer file names")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def ensure_wordnet() -> Path:
    """Make WordNet importable by NLTK; return the NLTK data folder. Raises BackendError if absent."""
    import nltk

    for base in nltk.data.path:
        if (Path(base) / "corpora" / "wordnet" / "lexnames").exists():
            return Path(base)
    src = system_wordnet()
    if src is None:
        raise BackendError(
            "WordNet data not found: install the Debian packages wordnet-base and "
            "wordnet-sense-index (the README's setup does), or NLTK's wordnet corpus"
        )
    root = cache_dir() / "nltk_data"
    dest = root / "corpora" / "wordnet"
    if not (dest / "lexnames").exists():
        tmp = dest.with_name("wordnet.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in src.iterdir():
            if f.is_file():
                shutil.copyfile(f, tmp / f.name)
        if not (tmp / "lexnames").exists():
            (tmp / "lexnames").write_text(_lexnames_text(), encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        logger.info("prepared WordNet for NLTK in %s", dest)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return root


def wordnet_available() -> bool:
    try:
        ensure_wordnet()
    except BackendError:
        return False
    return True
