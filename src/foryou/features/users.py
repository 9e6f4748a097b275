"""User features (e.g. country, age): the categorical and numeric encoders of items, fitted on the users table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from foryou.config import FeaturesConfig
from foryou.data.schema import FieldRoles
from foryou.errors import DataFileError
from foryou.features.tabular import TabularEncoder, TabularFeatures

ENCODER_FILE = "user_features.json"
UserFeatures = TabularFeatures


class UserFeatureEncoder:
    """Fitted vocabularies and numeric statistics of the users table's categorical and numeric fields."""

    def __init__(self, tabular: TabularEncoder) -> None:
        self.tabular = tabular

    @classmethod
    def fit(cls, users: pd.DataFrame, roles: FieldRoles, config: FeaturesConfig) -> UserFeatureEncoder:
        """Text and vector roles are ignored: user features are categorical and numeric only."""
        return cls(TabularEncoder.fit(users, roles.categorical, roles.numeric, config.max_categories,
                                      config.numeric_bands, "users"))

    def transform(self, users: pd.DataFrame) -> UserFeatures:
        """Encode `users` row by row; unseen values map to the unknown index."""
        return self.tabular.transform(users, "users")

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ENCODER_FILE).write_text(json.dumps(self.tabular.to_dict(), indent=1))

    @classmethod
    def load(cls, directory: Path) -> UserFeatureEncoder:
        path = Path(directory) / ENCODER_FILE
        try:
            return cls(TabularEncoder.from_dict(json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataFileError(f"cannot read the user feature encoder {path}: {exc}") from exc
