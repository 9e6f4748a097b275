"""Item and user feature encoding: cached frozen text embeddings, categorical vocabularies, numeric scalers."""

from foryou.features.catalog import ItemFeatureEncoder, ItemFeatures, item_category_sets
from foryou.features.tabular import FeatureTensors, TabularFeatures
from foryou.features.text import TextEncoder
from foryou.features.users import UserFeatureEncoder, UserFeatures

__all__ = [
    "FeatureTensors", "ItemFeatureEncoder", "ItemFeatures", "TabularFeatures", "TextEncoder",
    "UserFeatureEncoder", "UserFeatures", "item_category_sets",
]
