"""MovieLens ratings and movies, in the three layouts GroupLens ships; `data.path` is the unpacked folder.

- ml-latest / ml-latest-small / ml-20m / ml-25m: ratings.csv (userId,movieId,rating,timestamp),
  movies.csv (movieId,title,genres with '|'), optional tags.csv (userId,movieId,tag,timestamp).
- ml-100k: u.data (tab-separated user item rating timestamp), u.item ('|'-separated latin-1: id, title,
  release date, video date, IMDb URL, 19 genre flags), optional u.user (id|age|gender|occupation|zip).
- ml-1m: ratings.dat, movies.dat, users.dat ('::'-separated latin-1; users: id::gender::age::occupation::zip).

Events: event_type "rating", value = the rating, timestamp = unix seconds. Malformed ratings (empty ids,
non-numeric rating, unparseable timestamp) are quarantined. Items: `title` (text), `genres` (categorical list;
"(no genres listed)" means none), `year` (numeric, from "(1995)" at the end of the title, NaN if absent), and
`tags` (text: the movie's distinct tags in file order joined by ", ") when tags.csv exists. Duplicate movie ids:
the last row wins, counted in `dropped`. Users (100k, 1m): gender, occupation (categorical), age (numeric; the
age-band code in ml-1m); zip codes are not kept (one value per few users: no signal, only noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    missing_id_checks,
    parse_options,
    record_drop,
    require_folder,
    screen_rows,
    to_numbers,
)
from foryou.data.readers import read_csv, require_columns
from foryou.data.schema import FieldRoles, SourceTables
from foryou.data.timeparse import parse_timestamps
from foryou.errors import DataFileError

GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western"]
NO_GENRES = "(no genres listed)"
RATING_COLUMNS = ["userId", "movieId", "rating", "timestamp"]
_YEAR = r"\((\d{4})\)\s*$"


class MovieLensOptions(AdapterOptions):
    """No options: the layout is detected from the file names."""


@dataclass
class _Tables:
    ratings: pd.DataFrame
    ratings_file: Path
    movies: pd.DataFrame
    movies_file: Path
    users: pd.DataFrame | None = None
    tags: pd.DataFrame | None = None
    inputs: list[Path] = field(default_factory=list)
    first_row: int = 2


def load(config: DataConfig) -> SourceTables:
    """Rating events, movies and (when the layout has them) users from a MovieLens folder."""
    parse_options(MovieLensOptions, config.options, "movielens")
    folder = require_folder(Path(config.path or ""))
    tables = _read_layout(folder)
    interactions, quarantine = _ratings(tables)
    dropped: dict[str, int] = {}
    items, removed = keep_last_per_id(_items(tables))
    record_drop(dropped, f"duplicate movie ids in {tables.movies_file.name} (last kept)", removed)
    fields = FieldRoles(text=["title", *(["tags"] if tables.tags is not None else [])],
                        categorical=["genres"], numeric=["year"])
    users, user_fields = None, FieldRoles()
    if tables.users is not None:
        users, removed = keep_last_per_id(tables.users, S.USER_ID)
        record_drop(dropped, "duplicate user ids in the users file (last kept)", removed)
        user_fields = FieldRoles(categorical=["gender", "occupation"], numeric=["age"])
    return SourceTables(interactions=interactions, items=items, users=users, item_fields=fields,
                        user_fields=user_fields, quarantine=quarantine, dropped=dropped,
                        inputs=[str(p) for p in tables.inputs])


def _read_layout(folder: Path) -> _Tables:
    if find_optional(folder, ["ratings.csv"]):
        return _read_latest(folder)
    if find_optional(folder, ["u.data"]):
        return _read_100k(folder)
    if find_optional(folder, ["ratings.dat"]):
        return _read_1m(folder)
    raise DataFileError(f"{folder} is not a MovieLens folder: expected ratings.csv + movies.csv (ml-latest, "
                        "ml-25m), u.data + u.item (ml-100k) or ratings.dat + movies.dat (ml-1m)")


def _read_latest(folder: Path) -> _Tables:
    ratings_file, movies_file = find_file(folder, ["ratings.csv"]), find_file(folder, ["movies.csv"])
    ratings, movies = read_csv(ratings_file), read_csv(movies_file)
    require_columns(ratings, RATING_COLUMNS, ratings_file)
    require_columns(movies, ["movieId", "title", "genres"], movies_file)
    movies["genres"] = movies["genres"].str.split("|")
    tables = _Tables(ratings, ratings_file, movies, movies_file, inputs=[ratings_file, movies_file])
    tags_file = find_optional(folder, ["tags.csv"])
    if tags_file is not None:
        tables.tags = read_csv(tags_file)
        require_columns(tables.tags, ["movieId", "tag"], tags_file)
        tables.inputs.append(tags_file)
    return tables


def _read_100k(folder: Path) -> _Tables:
    ratings_file, movies_file = find_file(folder, ["u.data"]), find_file(folder, ["u.item"])
    ratings = read_csv(ratings_file, sep="\t", header=False, names=RATING_COLUMNS)
    names = ["movieId", "title", "release", "video_release", "url", *GENRES_100K]
    movies = read_csv(movies_file, sep="|", header=False, names=names, encoding="latin-1")
    flags = movies[GENRES_100K].eq("1").to_numpy()
    movies["genres"] = [[g for g, on in zip(GENRES_100K, row) if on] for row in flags]
    tables = _Tables(ratings, ratings_file, movies, movies_file, inputs=[ratings_file, movies_file], first_row=1)
    users_file = find_optional(folder, ["u.user"])
    if users_file is not None:
        users = read_csv(users_file, sep="|", header=False, names=["id", "age", "gender", "occupation", "zip"],
                         encoding="latin-1")
        tables.users, tables.inputs = _users(users), [*tables.inputs, users_file]
    return tables


def _read_1m(folder: Path) -> _Tables:
    ratings_file, movies_file = find_file(folder, ["ratings.dat"]), find_file(folder, ["movies.dat"])
    ratings = read_csv(ratings_file, sep="::", header=False, names=RATING_COLUMNS, encoding="latin-1")
    movies = read_csv(movies_file, sep="::", header=False, names=["movieId", "title", "genres"],
                      encoding="latin-1")
    movies["genres"] = movies["genres"].str.split("|")
    tables = _Tables(ratings, ratings_file, movies, movies_file, inputs=[ratings_file, movies_file], first_row=1)
    users_file = find_optional(folder, ["users.dat"])
    if users_file is not None:
        users = read_csv(users_file, sep="::", header=False, names=["id", "gender", "age", "occupation", "zip"],
                         encoding="latin-1")
        tables.users, tables.inputs = _users(users), [*tables.inputs, users_file]
    return tables


def _users(raw: pd.DataFrame) -> pd.DataFrame:
    users = pd.DataFrame({S.USER_ID: clean_ids(raw["id"]), "gender": raw["gender"],
                          "occupation": raw["occupation"], "age": to_numbers(raw["age"])[0]})
    return users.loc[users[S.USER_ID].notna()].reset_index(drop=True)


def _ratings(tables: _Tables) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = tables.ratings
    users, items = clean_ids(raw["userId"]), clean_ids(raw["movieId"])
    rating, bad_rating = to_numbers(raw["rating"])
    timestamp, bad_time = parse_timestamps(raw["timestamp"], "s")
    checks = [*missing_id_checks(pd.DataFrame({"userId": users, "movieId": items}), ["userId", "movieId"]),
              (bad_rating | raw["rating"].isna(), "non-numeric rating"), (bad_time, "unparseable timestamp")]
    ok, quarantine = screen_rows(raw, checks, tables.ratings_file, first_row=tables.first_row)
    interactions = build_interactions(users[ok], items[ok], timestamp[ok], S.RATING, rating[ok],
                                      raw.index[ok].to_numpy())
    return interactions, quarantine


def _items(tables: _Tables) -> pd.DataFrame:
    movies = tables.movies
    title = movies["title"].astype("str").str.strip()
    genres = [[g for g in value if g and g != NO_GENRES] if isinstance(value, list) else []
              for value in movies["genres"]]
    items = pd.DataFrame({S.ITEM_ID: clean_ids(movies["movieId"]), "title": title, "genres": genres,
                          "year": pd.to_numeric(title.str.extract(_YEAR)[0], errors="coerce").astype("float64")})
    if tables.tags is not None:
        items["tags"] = items[S.ITEM_ID].map(_tag_text(tables.tags))
    return items.loc[items[S.ITEM_ID].notna()].reset_index(drop=True)


def _tag_text(tags: pd.DataFrame) -> pd.Series:
    """Per movie id, its distinct tags (case-insensitive, first spelling kept) in file order joined by ', '."""
    frame = pd.DataFrame({"movie": clean_ids(tags["movieId"]), "tag": tags["tag"].astype("str").str.strip()})
    frame = frame.loc[frame["movie"].notna() & frame["tag"].notna() & (frame["tag"].str.len() > 0)]
    frame = frame.loc[~frame.assign(key=frame["tag"].str.lower()).duplicated(["movie", "key"])]
    return frame.groupby("movie", sort=False)["tag"].agg(", ".join)
