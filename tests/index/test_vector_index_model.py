"""Property test: a VectorIndex of every kind against a plain dict model over random sequences of add / replace /
remove / search / compact (hand-picked cases missed a cached live-row selector that hid new labels)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from foryou.config import IndexConfig
from foryou.index import VectorIndex, build_index

DIM = 8
LABELS = st.integers(min_value=0, max_value=40)


def unit_vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def machine_for(kind: str) -> type[RuleBasedStateMachine]:
    class IndexAgainstDict(RuleBasedStateMachine):
        """The model: label -> its current unit vector. Every search must agree with a brute force over it."""

        index: VectorIndex
        model: dict[int, np.ndarray]

        @initialize(labels=st.lists(LABELS, min_size=1, max_size=12, unique=True), seed=st.integers(0, 10**6))
        def build(self, labels: list[int], seed: int) -> None:
            self.model = {label: unit_vector(seed + label) for label in labels}
            self.index = build_index(np.stack(list(self.model.values())), np.array(labels), IndexConfig(kind=kind))

        @rule(label=LABELS, seed=st.integers(0, 10**6))
        def upsert(self, label: int, seed: int) -> None:  # add when new, replace when present
            vector = unit_vector(seed)
            self.index.upsert(np.array([label]), vector[None])
            self.model[label] = vector

        @rule(label=LABELS)
        def remove(self, label: int) -> None:
            self.index.remove(np.array([label]))
            self.model.pop(label, None)

        @rule()
        def compact(self) -> None:
            self.index.compact(0.0)

        @rule(k=st.integers(1, 5), data=st.data())
        def search_own_vector(self, k: int, data: st.DataObject) -> None:
            if not self.model:
                return
            label = data.draw(st.sampled_from(sorted(self.model)))
            found, scores = self.index.search(self.model[label][None], k)
            truth = {other: float(vector @ self.model[label]) for other, vector in self.model.items()}
            assert found[0, 0] == label or np.isclose(truth.get(int(found[0, 0]), -2.0), 1.0, atol=1e-6), \
                f"label {label} is not its own nearest item (nor a twin): {found[0].tolist()}"
            self.check_against_brute_force(self.model[label], k, found[0], scores[0])

        @rule(k=st.integers(1, 50), seed=st.integers(0, 10**6))
        def search_random_query(self, k: int, seed: int) -> None:
            query = unit_vector(10**7 + seed)
            found, scores = self.index.search(query[None], k)
            self.check_against_brute_force(query, k, found[0], scores[0])

        def check_against_brute_force(self, query: np.ndarray, k: int, found: np.ndarray,
                                      scores: np.ndarray) -> None:
            expected = min(k, len(self.model))
            assert (found[:expected] >= 0).all() and (found[expected:] == -1).all()
            assert set(found[:expected].tolist()) <= set(self.model), "a removed or unknown label came back"
            assert len(set(found[:expected].tolist())) == expected, "a label came back twice"
            truth = {label: float(vector @ query) for label, vector in self.model.items()}
            np.testing.assert_allclose(scores[:expected], [truth[label] for label in found[:expected]], atol=1e-5)
            if kind == "exact":  # the exact kind must give the true top-k scores
                best = sorted(truth.values(), reverse=True)[:expected]
                np.testing.assert_allclose(scores[:expected], best, atol=1e-5)

        @invariant()
        def same_labels(self) -> None:
            if hasattr(self, "index"):
                assert self.index.ids().tolist() == sorted(self.model)
                assert len(self.index) == len(self.model)

    return IndexAgainstDict


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_index_behaves_like_a_dict_of_vectors(kind: str) -> None:
    machine = machine_for(kind)
    machine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
    machine.TestCase().runTest()
