"""H&M Personalized Fashion Recommendations (Kaggle 2022): a folder with the three competition CSVs.

- transactions_train.csv: t_dat (a date only), customer_id, article_id, price, sales_channel_id -> purchase
  events with value = price, timestamp = midnight of t_dat in `data.timezone`. Dates tie constantly, so
  `source_order` (the file row) is what orders a customer's purchases within a day.
- articles.csv: article_id (a string with leading zeros, kept as read), prod_name and detail_desc (text),
  product/colour/department/index/section/garment names (categorical); `price` (numeric) = the article's mean
  price over the kept transactions (NaN when never sold). Duplicate article ids: the last row wins.
- customers.csv (optional): customer_id, club_member_status, fashion_news_frequency (categorical), age
  (numeric). Duplicate customer ids: the last row wins.
Malformed transactions (empty ids, unparseable t_dat, non-numeric price) are quarantined.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from foryou.config import DataConfig
from foryou.data import schema as S
from foryou.data.adapters.common import (
    AdapterOptions,
    build_interactions,
    clean_ids,
    find_file,
    find_optional,
    keep_last_per_id,
    parse_options,
    record_drop,
    require_folder,
    screen_rows,
    to_numbers,
)
from foryou.data.readers import read_csv, require_columns
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.timeparse import parse_timestamps

ARTICLE_TEXT = ["prod_name", "detail_desc"]
ARTICLE_CATEGORICAL = ["product_type_name", "product_group_name", "colour_group_name", "department_name",
                       "index_name", "section_name", "garment_group_name"]
CUSTOMER_CATEGORICAL = ["club_member_status", "fashion_news_frequency"]


class HmOptions(AdapterOptions):
    """No options."""


def load(config: DataConfig) -> SourceTables:
    """Purchases, articles and customers from an H&M competition folder."""
    parse_options(HmOptions, config.options, "hm")
    folder = require_folder(Path(config.path or ""))
    transactions_file = find_file(folder, ["transactions_train.csv"])
    articles_file = find_file(folder, ["articles.csv"])
    interactions, quarantine = _transactions(transactions_file, config.timezone)
    dropped: dict[str, int] = {}
    items = _articles(articles_file, interactions, dropped)
    inputs = [str(transactions_file), str(articles_file)]
    users, user_fields = None, FieldRoles()
    customers_file = find_optional(folder, ["customers.csv"])
    if customers_file is not None:
        users = _customers(customers_file, dropped)
        user_fields = FieldRoles(categorical=list(CUSTOMER_CATEGORICAL), numeric=["age"])
        inputs.append(str(customers_file))
    return SourceTables(interactions=interactions, items=items, users=users,
                        item_fields=FieldRoles(text=list(ARTICLE_TEXT), categorical=list(ARTICLE_CATEGORICAL),
                                               numeric=["price"]),
                        user_fields=user_fields, quarantine=quarantine, dropped=dropped, inputs=inputs)


def _transactions(path: Path, timezone: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = read_csv(path)
    require_columns(raw, ["t_dat", "customer_id", "article_id", "price"], path)
    users, items = clean_ids(raw["customer_id"]), clean_ids(raw["article_id"])
    timestamp, bad_time = parse_timestamps(raw["t_dat"], "iso", timezone)
    price, bad_price = to_numbers(raw["price"])
    checks = [(users.isna(), "empty customer_id"), (items.isna(), "empty article_id"),
              (bad_time, "unparseable t_dat"), (bad_price | raw["price"].isna(), "non-numeric price")]
    ok, quarantine = screen_rows(raw, checks, path)
    frame = build_interactions(users[ok], items[ok], timestamp[ok], S.PURCHASE, price[ok], raw.index[ok].to_numpy())
    return frame, quarantine


def _articles(path: Path, interactions: pd.DataFrame, dropped: dict[str, int]) -> pd.DataFrame:
    raw = read_csv(path)
    require_columns(raw, ["article_id", *ARTICLE_TEXT, *ARTICLE_CATEGORICAL], path)
    items = pd.DataFrame({S.ITEM_ID: clean_ids(raw["article_id"])})
    for column in [*ARTICLE_TEXT, *ARTICLE_CATEGORICAL]:
        items[column] = raw[column]
    record_drop(dropped, f"rows without article_id in {path.name}", int(items[S.ITEM_ID].isna().sum()))
    items, removed = keep_last_per_id(items.loc[items[S.ITEM_ID].notna()])
    record_drop(dropped, f"duplicate article ids in {path.name} (last kept)", removed)
    mean_price = interactions.groupby(S.ITEM_ID)[S.VALUE].mean()
    items["price"] = items[S.ITEM_ID].map(mean_price).astype("float64")
    return items


def _customers(path: Path, dropped: dict[str, int]) -> pd.DataFrame:
    raw = read_csv(path)
    require_columns(raw, ["customer_id", *CUSTOMER_CATEGORICAL, "age"], path)
    users = pd.DataFrame({S.USER_ID: clean_ids(raw["customer_id"])})
    for column in CUSTOMER_CATEGORICAL:
        users[column] = raw[column]
    users["age"] = to_numbers(raw["age"])[0]
    record_drop(dropped, f"rows without customer_id in {path.name}", int(users[S.USER_ID].isna().sum()))
    users, removed = keep_last_per_id(users.loc[users[S.USER_ID].notna()], S.USER_ID)
    record_drop(dropped, f"duplicate customer ids in {path.name} (last kept)", removed)
    return users
