"""A small generated shop for the service tests: three categories, users who each keep to one, a bundle.

Titles name the category ("Gold Hoop Earrings 3" is jewellery), prices differ by category, and every user buys
within one category, so a correct service recommends that category and explains with the user's own items.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foryou import workflow
from foryou.config import load_config

CATEGORIES = {"Jewellery": ("Gold Hoop Earrings", 40.0), "Home Decor": ("Ceramic Vase", 25.0),
              "Kitchen": ("Steel Whisk", 8.0)}
ITEMS_PER_CATEGORY, N_USERS, EVENTS_PER_USER = 20, 90, 8


def item_rows(prefix: str = "") -> list[tuple[str, str, str, float]]:
    """(item_id, title, category, price) of the catalog; `prefix` starts every item id (another shop)."""
    rows = []
    for c, (category, (title, price)) in enumerate(CATEGORIES.items()):
        for i in range(ITEMS_PER_CATEGORY):
            rows.append((f"{prefix}{category[:3].lower()}{i}", f"{title} {i}", category, price + i))
    return rows


def user_category(user: int) -> str:
    return list(CATEGORIES)[user % len(CATEGORIES)]


def write_shop(root: Path, prefix: str = "") -> Path:
    """Write events.csv, items.csv and run.yaml under `root`; returns the config path. A `prefix` makes another
    shop: every item and user id starts with it."""
    rng = np.random.default_rng(0)
    items = item_rows(prefix)
    lines = ["user,sku,ts,action"]
    for user in range(N_USERS):
        own = [row[0] for row in items if row[2] == user_category(user)]
        for position, item in enumerate(rng.choice(own, EVENTS_PER_USER, replace=False)):
            action = "purchase" if position % 3 == 2 else "view"
            lines.append(f"{prefix}u{user},{item},{1_700_000_000 + 3600 * position + user},{action}")
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    (root / "items.csv").write_text("sku,title,category,price\n" + "".join(
        f"{item},{title},{category},{price}\n" for item, title, category, price in items))
    config = root / "run.yaml"
    config.write_text(f"""
name: shop
output_dir: {root / 'run'}
data:
  source: generic
  interactions:
    path: {root / 'events.csv'}
    columns: {{user_id: user, item_id: sku, timestamp: ts, event_type: action}}
  items:
    path: {root / 'items.csv'}
    columns: {{item_id: sku}}
    text: [title]
    categorical: [category]
    numeric: [price]
model: {{use_text: false, max_history: 10, embedding_dim: 16}}
train: {{epochs: 3, batch_size: 32}}
tracking: {{mlflow: false}}
""")
    return config


def build_shop_bundle(root: Path, prefix: str = "") -> Path:
    """The whole pipeline on the generated shop (ids prefixed by `prefix`); returns the bundle folder."""
    result = workflow.run_pipeline(load_config(write_shop(root, prefix)), progress=False)
    return result.bundle_path
