"""Item / user feature encoders: vocabularies, numeric scaling and bands by hand, new items, save/load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from foryou.config import FeaturesConfig
from foryou.data.schema import FieldRoles
from foryou.errors import DataFileError, MissingColumnError
from foryou.features.catalog import ItemFeatureEncoder, item_category_sets, item_texts
from foryou.features.categorical import CategoricalVocabulary, cell_values
from foryou.features.numeric import NumericScaler
from foryou.features.users import UserFeatureEncoder

E = math.e
ROLES = FieldRoles(text=["description", "title"], categorical=["brand", "genres"], numeric=["price"],
                   vector=["image"])


def catalog() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": ["a", "b", "c", "d"],
        "title": ["Gold ring", "Silver ring", None, "Oil"],
        "description": [["shiny", "small"], None, "a plain thing", ""],
        "brand": ["acme", "acme", "zen", "rare"],
        "genres": [["x", "y"], ["y"], [], ["y", "z", "x"]],
        # log1p(max(x, 0)): 0, 1, 2, missing -> mean 1, std sqrt(2/3)
        "price": [0.0, E - 1, E**2 - 1, None],
        "image": [[1.0, 0.0], [0.0, 1.0], None, [0.5, 0.5]],
    })


def fitted(max_categories: int = 1000, numeric_bands: int = 2) -> ItemFeatureEncoder:
    config = FeaturesConfig(max_categories=max_categories, numeric_bands=numeric_bands)
    return ItemFeatureEncoder.fit(catalog(), ROLES, config)


def test_cell_values_handles_scalars_lists_and_missing() -> None:
    assert cell_values("a") == ["a"]
    assert cell_values(["b", "a", "b", None, " "]) == ["b", "a"]
    assert cell_values(np.array(["p", "q"])) == ["p", "q"]
    assert cell_values(None) == [] and cell_values(float("nan")) == []
    assert cell_values(7) == ["7"]


def test_vocabulary_orders_by_item_count_then_value() -> None:
    # genres present in: y 3 items, x 2, z 1 -> y=2, x=3, z=4; brand: acme 2, rare 1, zen 1 -> acme, rare, zen
    features = fitted().transform(catalog(), None)
    assert features.cardinalities == {"brand": 4, "genres": 4}  # unknown + 3 values
    np.testing.assert_array_equal(features.categorical["brand"], [[2], [2], [4], [3]])
    # width 3 = the most genres one item has (d); empty slots are padding 0
    np.testing.assert_array_equal(features.categorical["genres"], [[3, 2, 0], [2, 0, 0], [0, 0, 0], [2, 4, 3]])
    assert features.categorical["genres"].dtype == np.int64


def test_rare_values_map_to_unknown() -> None:
    # max_categories=1 keeps only the most frequent value: brand acme, genre y; everything else -> 1
    features = fitted(max_categories=1).transform(catalog(), None)
    np.testing.assert_array_equal(features.categorical["brand"][:, 0], [2, 2, 1, 1])
    np.testing.assert_array_equal(features.categorical["genres"], [[1, 2, 0], [2, 0, 0], [0, 0, 0], [2, 1, 1]])
    assert features.cardinalities["brand"] == 2


def test_numeric_log_standardise_and_bands_by_hand() -> None:
    features = fitted(numeric_bands=2).transform(catalog(), None)
    std = math.sqrt(2 / 3)  # logs 0, 1, 2 around mean 1: ((1 + 0 + 1) / 3) ** 0.5
    np.testing.assert_allclose(features.numeric[:, 0], [-1 / std, 0.0, 1 / std, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(features.numeric_missing[:, 0], [0, 0, 0, 1])
    # 2 bands cut at the median log value 1; a value on the cut goes up: 0 -> 1, 1 -> 2, 2 -> 2, missing -> 0
    np.testing.assert_array_equal(features.numeric_bands[:, 0], [1, 2, 2, 0])
    assert features.band_counts == [2] and features.numeric_fields == ["price"]
    assert features.numeric.dtype == np.float32 and features.numeric_bands.dtype == np.int64


def test_negative_and_text_numbers_and_constant_field() -> None:
    scaler = NumericScaler.fit(pd.Series([3.0, 3.0], name="p"), n_bands=4)
    assert scaler.std == 1.0 and scaler.n_bands == 2  # 3 equal quantile cuts merge into one
    values, missing, bands = scaler.transform(pd.Series([-5.0, "cheap", 3.0]))
    # -5 -> log1p(0) = 0, standardised (0 - log 4) / 1
    np.testing.assert_allclose(values, [-math.log(4), 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(missing, [0, 1, 0])
    np.testing.assert_array_equal(bands, [1, 0, 2])


def test_text_joins_fields_title_first_and_lists() -> None:
    encoder = fitted()
    assert encoder.text_fields == ["title", "description"]
    texts = item_texts(catalog(), encoder.text_fields)
    assert texts == ["Gold ring. shiny. small", "Silver ring", "a plain thing", "Oil"]


def test_text_goes_through_the_text_encoder(tmp_path: Path) -> None:
    class Recording:
        def encode(self, texts: list[str], kind: str = "passage") -> np.ndarray:
            self.texts = texts
            return np.ones((len(texts), 3), dtype=np.float32)

    recording = Recording()
    features = fitted().transform(catalog(), recording)  # type: ignore[arg-type]
    assert recording.texts[0] == "Gold ring. shiny. small"
    assert features.text is not None and features.text.shape == (4, 3)
    assert fitted().transform(catalog(), None).text is None


def test_vectors_are_stacked_with_zeros_for_missing() -> None:
    features = fitted().transform(catalog(), None)
    assert features.vectors is not None
    np.testing.assert_array_equal(features.vectors, [[1, 0], [0, 1], [0, 0], [0.5, 0.5]])
    bad = catalog().assign(image=[[1.0], [0.0, 1.0], None, None])
    with pytest.raises(DataFileError, match="vector field 'image' has rows of different lengths"):
        ItemFeatureEncoder.fit(bad, ROLES, FeaturesConfig())


def test_new_items_with_unknown_categories_transform_without_error(tmp_path: Path) -> None:
    encoder = fitted()
    encoder.save(tmp_path)
    loaded = ItemFeatureEncoder.load(tmp_path)
    new = pd.DataFrame({"item_id": ["e"], "title": ["New"], "description": [None], "brand": ["unseen"],
                        "genres": [["z", "brand-new"]], "price": [E - 1], "image": [[2.0, 2.0]]})
    for encoder_ in (encoder, loaded):
        features = encoder_.transform(new, None)
        np.testing.assert_array_equal(features.categorical["brand"], [[1]])
        np.testing.assert_array_equal(features.categorical["genres"], [[4, 1, 0]])
        np.testing.assert_allclose(features.numeric, [[0.0]], atol=1e-7)  # log 1 == fitted mean


def test_save_load_round_trip_gives_identical_features(tmp_path: Path) -> None:
    encoder = fitted(numeric_bands=3)
    encoder.save(tmp_path)
    before = encoder.transform(catalog(), None)
    after = ItemFeatureEncoder.load(tmp_path).transform(catalog(), None)
    for name in before.categorical:
        np.testing.assert_array_equal(before.categorical[name], after.categorical[name])
    for attribute in ("numeric", "numeric_missing", "numeric_bands", "vectors"):
        np.testing.assert_array_equal(getattr(before, attribute), getattr(after, attribute))
    assert before.cardinalities == after.cardinalities and before.band_counts == after.band_counts


def test_load_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="item_features.json"):
        ItemFeatureEncoder.load(tmp_path)


def test_missing_column_is_named() -> None:
    with pytest.raises(MissingColumnError, match="items table has no column.*brand"):
        fitted().transform(catalog().drop(columns=["brand"]), None)


def test_to_torch_keeps_shapes_and_dtypes() -> None:
    tensors = fitted().transform(catalog(), None).to_torch("cpu")
    assert tensors.categorical["genres"].dtype == torch.int64 and tensors.categorical["genres"].shape == (4, 3)
    assert tensors.numeric.dtype == torch.float32 and tensors.numeric_bands.dtype == torch.int64
    assert tensors.vectors is not None and tensors.text is None


def test_item_category_sets() -> None:
    assert item_category_sets(catalog(), "genres") == [{"x", "y"}, {"y"}, set(), {"x", "y", "z"}]
    assert item_category_sets(catalog(), "brand")[2] == {"zen"}


def test_vocabulary_width_is_capped_and_extra_values_cut() -> None:
    vocabulary = CategoricalVocabulary.fit(pd.Series([["a"], ["b"]], name="f"), max_categories=10)
    assert vocabulary.width == 1
    np.testing.assert_array_equal(vocabulary.transform(pd.Series([["b", "a"]])), [[3]])  # a=2, b=3; cut to 1


def test_user_encoder_round_trip(tmp_path: Path) -> None:
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "country": ["FR", "FR", "DE"], "age": [20, None, 40]})
    roles = FieldRoles(categorical=["country"], numeric=["age"])
    encoder = UserFeatureEncoder.fit(users, roles, FeaturesConfig(numeric_bands=2))
    encoder.save(tmp_path)
    new = pd.DataFrame({"user_id": ["u4"], "country": ["JP"], "age": [40]})
    features = UserFeatureEncoder.load(tmp_path).transform(new)
    np.testing.assert_array_equal(features.categorical["country"], [[1]])  # JP unseen -> unknown
    # logs log 21, log 41: mean m, std (log 41 - log 21) / 2; age 40 -> +1 standard deviation, upper band
    np.testing.assert_allclose(features.numeric, [[1.0]], rtol=1e-6)
    np.testing.assert_array_equal(features.numeric_bands, [[2]])
    assert len(features) == 1
