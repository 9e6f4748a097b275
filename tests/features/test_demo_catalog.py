"""Content sanity on the bundled demo catalogue: the default encoder puts plainly related products nearest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from foryou.features.text import TextEncoder

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo" / "online_retail_sample.csv.gz"
# hand-picked product -> a word every plainly related product shares
PICKED = {"LUNCH BAG RED RETROSPOT": "BAG", "PACK OF 72 RETROSPOT CAKE CASES": "CAKE CASES",
          "PAPER CHAIN KIT 50'S CHRISTMAS": "PAPER CHAIN KIT", "REGENCY CAKESTAND 3 TIER": "CAKE",
          "WHITE HANGING HEART T-LIGHT HOLDER": "T-LIGHT HOLDER"}


def test_nearest_demo_products_are_related(tmp_path: Path) -> None:
    """Among all ~3,500 demo descriptions, the 3 nearest of each hand-picked product are the same kind of thing."""
    catalogue = sorted(set(pd.read_csv(DEMO, usecols=["Description"])["Description"].dropna().str.strip()))
    vectors = TextEncoder(cache_dir=tmp_path).encode(catalogue)
    for product, shared_words in PICKED.items():
        row = catalogue.index(product)
        similarity = vectors @ vectors[row]
        similarity[row] = -np.inf
        nearest = [catalogue[index] for index in np.argsort(-similarity)[:3]]
        assert all(shared_words in name for name in nearest), (product, nearest)
