"""Synthetic interaction logs in three shapes, written as a generic-mapping dataset plus a new user's run config.

Each shape stresses what "good by default on any data" has to cope with, and each has structure a model can learn
(so a good default beats popularity):
  tiny      ~150 items, ~1,500 users with 3-10 purchases: short histories; users stay in one or two item clusters
            and often buy the complement of their previous item (strong item-item structure).
  dense     ~600 users x ~1,700 items, ~100k ratings (1-5, event type rating): popularity-skewed choices driven by
            latent user and item factors; genres follow the factors.
  sessions  ~1,000 users with 50-300 views and purchases: frequent re-views and re-buys of recent items, and the
            next new item's cluster follows the previous item's cluster through a Markov chain.
  tiny_ratings  150 items, 400 users with 5-10 ratings (1-5) each: latent tastes pick and rate the items, and a
            user rates them roughly in the order the items came out (a weak sequence), as rating dumps do.
  tiny_repeats  ~160 items, ~350 users with 3-10 purchases: the tiny shape where each purchase after the first
            re-buys one of the user's earlier items with probability 0.07 (about 6% of the test targets).

Files written into OUT_DIR: interactions.csv (user, item, ts in unix seconds, plus rating or action), items.csv
(item, title, category, price) and config.yaml, which holds only the data mapping (no model or train settings):
what a new user writes. `scale` multiplies user and item counts (tests use small ones).

Usage: .venv/bin/python benchmarks/synthetic_logs.py {tiny,dense,sessions,tiny_ratings,tiny_repeats} OUT_DIR
       [--seed N] [--scale X]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

START = 1_672_531_200  # 2023-01-01T00:00:00Z, the first timestamp of every log
DAY = 86_400
TOPICS = (  # category -> nouns its item titles use, so text and category carry the cluster
    ("kitchen", ("knife", "pan", "kettle")), ("garden", ("hose", "rake", "planter")),
    ("audio", ("headphones", "speaker", "amplifier")), ("camera", ("lens", "tripod", "camera bag")),
    ("running", ("running shoes", "sports watch", "water bottle")), ("baby", ("stroller", "bottle", "blanket")),
    ("office", ("desk lamp", "stapler", "notebook")), ("gaming", ("controller", "headset", "console stand")),
    ("bathroom", ("towel", "soap dish", "shower curtain")), ("camping", ("tent", "sleeping bag", "lantern")),
    ("cycling", ("helmet", "bike light", "saddle")), ("pets", ("dog lead", "cat bed", "pet bowl")),
    ("painting", ("brush set", "canvas", "easel")), ("coffee", ("grinder", "espresso cup", "coffee beans")),
    ("fishing", ("rod", "reel", "tackle box")), ("yoga", ("yoga mat", "foam block", "strap")),
    ("baking", ("cake tin", "whisk", "mixing bowl")), ("travel", ("suitcase", "neck pillow", "adapter")),
    ("music", ("guitar strings", "capo", "metronome")), ("tools", ("drill", "screwdriver set", "tape measure")),
    ("lighting", ("floor lamp", "bulb", "fairy lights")), ("reading", ("bookmark", "reading light", "book stand")),
    ("cleaning", ("mop", "sponge pack", "vacuum bags")), ("winter", ("gloves", "scarf", "hand warmer")),
)
ADJECTIVES = ("classic", "compact", "deluxe", "eco", "pro", "mini", "smart", "vintage", "sturdy", "light")


@dataclass
class Log:
    """A generated dataset: interactions (user, item, ts, + shape columns), items and the interactions mapping."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    mapping: dict[str, Any]  # data.interactions of the config, without its path


def catalog(rng: np.random.Generator, n_items: int, clusters: np.ndarray) -> pd.DataFrame:
    """Items whose title, category and price follow their cluster (`clusters[i]` indexes TOPICS, mod its size)."""
    topics = clusters % len(TOPICS)
    base_price = np.exp(rng.normal(3.0, 0.8, len(TOPICS)))
    titles = [f"{ADJECTIVES[rng.integers(len(ADJECTIVES))]} {TOPICS[t][1][rng.integers(3)]} {i}"
              for i, t in enumerate(topics)]
    prices = np.round(base_price[topics] * np.exp(rng.normal(0.0, 0.3, n_items)), 2)
    return pd.DataFrame({"item": [f"i{i}" for i in range(n_items)], "title": titles,
                         "category": [TOPICS[t][0] for t in topics], "price": prices})


def zipf_weights(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Popularity weights 1/rank^exponent over a random order of `n` items (sum 1)."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(weights) / weights.sum()


def pick(rng: np.random.Generator, candidates: np.ndarray, weights: np.ndarray, exclude: set[int]) -> int:
    """One of `candidates` by `weights`, avoiding `exclude` unless nothing else is left."""
    allowed = np.array([c not in exclude for c in candidates])
    if not allowed.any():
        allowed[:] = True
    p = weights * allowed
    return int(candidates[rng.choice(len(candidates), p=p / p.sum())])


def tiny(rng: np.random.Generator, scale: float = 1.0) -> Log:
    """Short purchase histories over a small catalog: a user's next item is the complement of the previous one
    (half the time), another item of the user's clusters, or (15%) anything popular."""
    return purchases(rng, max(60, round(150 * scale)), max(30, round(1500 * scale)), repeat=0.0)


def tiny_repeats(rng: np.random.Generator, scale: float = 1.0) -> Log:
    """The tiny shape, smaller, where a purchase re-buys one of the user's earlier items 7% of the time."""
    return purchases(rng, max(60, round(160 * scale)), max(30, round(350 * scale)), repeat=0.07)


def purchases(rng: np.random.Generator, n_items: int, n_users: int, repeat: float) -> Log:
    """3-10 purchases per user in two of 10 item clusters, complements bought together; with probability `repeat`
    a purchase after the first is a re-buy of an earlier item (uniformly; none drawn when `repeat` is 0)."""
    n_clusters = 10
    clusters = np.arange(n_items) % n_clusters
    popularity = zipf_weights(rng, n_items, 0.8)
    partner = np.arange(n_items) ^ 1  # pairs (0, 1), (2, 3), ... of neighbouring clusters, bought together
    partner[partner >= n_items] = n_items - 1  # an odd last item has no partner (its own: never chosen again)
    members = [np.flatnonzero(clusters == c) for c in range(n_clusters)]
    rows = []
    for user in range(n_users):
        own = rng.choice(n_clusters, size=2, replace=False)
        seen: list[int] = []
        for _ in range(int(rng.integers(3, 11))):
            if repeat and seen and rng.random() < repeat:
                seen.append(seen[int(rng.integers(len(seen)))])
                continue
            draw = rng.random()
            if seen and draw < 0.5 and partner[seen[-1]] not in seen:
                item = int(partner[seen[-1]])
            elif draw < 0.85 or not seen:
                cluster = own[0] if rng.random() < 0.7 else own[1]
                item = pick(rng, members[cluster], popularity[members[cluster]], set(seen))
            else:
                item = pick(rng, np.arange(n_items), popularity, set(seen))
            seen.append(item)
        start = START + int(rng.integers(0, 180 * DAY))
        times = start + np.cumsum(rng.integers(3600, 20 * DAY, len(seen)))
        rows += [(f"u{user}", f"i{item}", int(ts)) for item, ts in zip(seen, times)]
    frame = pd.DataFrame(rows, columns=["user", "item", "ts"])
    mapping = {"columns": {"user_id": "user", "item_id": "item", "timestamp": "ts"},
               "event_type": "purchase", "timestamp_unit": "s"}
    return Log(frame, catalog(rng, n_items, clusters), mapping)


@dataclass
class DenseTastes:
    """The dense shape's hidden truth: what each user's choices are drawn by."""

    item_factors: np.ndarray  # (n_items, 8)
    affinity: np.ndarray  # (n_users, n_items) user x item factors, about unit variance: the ratings follow it
    logits: np.ndarray  # (n_users, n_items) 1.5 x affinity + log popularity: the choices follow it


def dense_tastes(rng: np.random.Generator, scale: float = 1.0) -> DenseTastes:
    """The first draws of `dense` (the same `rng` gives the same truth), for a model-free ceiling on its log."""
    n_users, n_items, n_factors = max(30, round(600 * scale)), max(80, round(1700 * scale)), 8
    users, items = rng.normal(0.0, 1.0, (n_users, n_factors)), rng.normal(0.0, 1.0, (n_items, n_factors))
    affinity = users @ items.T / np.sqrt(n_factors)
    return DenseTastes(items, affinity, 1.5 * affinity + np.log(zipf_weights(rng, n_items, 1.0))[None, :])


def dense(rng: np.random.Generator, scale: float = 1.0) -> Log:
    """A dense rating log: each user rates ~167 items chosen by latent affinity + popularity (Gumbel top-k), and
    rates them 1-5 by that affinity; the item's genre is its strongest latent factor."""
    tastes = dense_tastes(rng, scale)
    affinity, logits, items = tastes.affinity, tastes.logits, tastes.item_factors
    n_users, n_items = affinity.shape
    target = 100_000 * scale
    counts = np.exp(rng.normal(0.0, 0.8, n_users))
    counts = np.clip(np.round(counts / counts.sum() * target), 20, n_items // 2).astype(int)
    keys = logits + rng.gumbel(size=logits.shape)
    rows = []
    for user in range(n_users):
        chosen = np.argsort(-keys[user])[: counts[user]]
        ratings = np.clip(np.round(3.2 + 1.2 * affinity[user, chosen] + rng.normal(0.0, 0.6, len(chosen))), 1, 5)
        start = START + int(rng.integers(0, 700 * DAY))
        times = start + np.cumsum(rng.integers(30, 2 * DAY, len(chosen)))
        order = rng.permutation(len(chosen))  # the items come in random order, each with its own rating
        rows += [(f"u{user}", f"i{item}", int(ts), int(r)) for item, ts, r in zip(chosen[order], times,
                                                                                     ratings[order])]
    frame = pd.DataFrame(rows, columns=["user", "item", "ts", "rating"])
    mapping = {"columns": {"user_id": "user", "item_id": "item", "timestamp": "ts", "value": "rating"},
               "event_type": "rating", "timestamp_unit": "s"}
    return Log(frame, catalog(rng, n_items, np.argmax(items, axis=1)), mapping)


def tiny_ratings(rng: np.random.Generator, scale: float = 1.0) -> Log:
    """5-10 ratings per user over a small catalog: items picked by latent affinity + popularity (Gumbel top-k) and
    rated 1-5 by that affinity, in roughly the order the items came out (each item has a release position)."""
    n_users, n_items, n_factors = max(30, round(400 * scale)), max(60, round(150 * scale)), 4
    users, items = rng.normal(0.0, 1.0, (n_users, n_factors)), rng.normal(0.0, 1.0, (n_items, n_factors))
    affinity = users @ items.T / np.sqrt(n_factors)
    keys = 1.5 * affinity + np.log(zipf_weights(rng, n_items, 0.9))[None, :] + rng.gumbel(size=affinity.shape)
    release = rng.random(n_items)
    rows = []
    for user in range(n_users):
        chosen = np.argsort(-keys[user])[: int(rng.integers(5, 11))]
        chosen = chosen[np.argsort(release[chosen] + rng.normal(0.0, 0.15, len(chosen)))]
        ratings = np.clip(np.round(3.5 + 1.0 * affinity[user, chosen] + rng.normal(0.0, 0.6, len(chosen))), 1, 5)
        start = START + int(rng.integers(0, 365 * DAY))
        times = start + np.cumsum(rng.integers(60, 3 * DAY, len(chosen)))
        rows += [(f"u{user}", f"i{item}", int(ts), int(r)) for item, ts, r in zip(chosen, times, ratings)]
    frame = pd.DataFrame(rows, columns=["user", "item", "ts", "rating"])
    mapping = {"columns": {"user_id": "user", "item_id": "item", "timestamp": "ts", "value": "rating"},
               "event_type": "rating", "timestamp_unit": "s"}
    return Log(frame, catalog(rng, n_items, np.argmax(items, axis=1)), mapping)


def sessions(rng: np.random.Generator, scale: float = 1.0) -> Log:
    """Long histories with repeats: 40% of events re-view or re-buy one of the user's recent items; otherwise the
    next cluster follows the previous item's cluster (Markov chain) and the item the user's taste in it."""
    n_items, n_users, n_clusters = max(60, round(600 * scale)), max(30, round(1000 * scale)), 20
    clusters = np.arange(n_items) % n_clusters
    members = [np.flatnonzero(clusters == c) for c in range(n_clusters)]
    transitions = markov_chain(n_clusters)
    popularity = zipf_weights(rng, n_items, 0.8)
    rows = []
    for user in range(n_users):
        taste = popularity * rng.gamma(0.3, 1.0, n_items)  # a few favourites per cluster
        length = int(np.exp(rng.uniform(np.log(50), np.log(301))))
        history = [pick(rng, np.arange(n_items), taste, set())]
        for _ in range(length - 1):
            if rng.random() < 0.4:
                recent = np.array(history[-20:])
                history.append(int(recent[rng.choice(len(recent), p=recency_weights(len(recent)))]))
                continue
            cluster = rng.choice(n_clusters, p=transitions[clusters[history[-1]]])
            history.append(pick(rng, members[cluster], taste[members[cluster]] + 1e-12, set(history[-3:])))
        gaps = np.where(rng.random(length) < 0.1, rng.integers(DAY, 5 * DAY, length), rng.integers(20, 600, length))
        times = START + int(rng.integers(0, 60 * DAY)) + np.cumsum(gaps)
        actions = np.where(rng.random(length) < 0.15, "purchase", "view")
        rows += [(f"u{user}", f"i{item}", int(ts), action) for item, ts, action in zip(history, times, actions)]
    frame = pd.DataFrame(rows, columns=["user", "item", "ts", "action"])
    mapping = {"columns": {"user_id": "user", "item_id": "item", "timestamp": "ts", "event_type": "action"},
               "timestamp_unit": "s"}
    return Log(frame, catalog(rng, n_items, clusters), mapping)


def markov_chain(n: int) -> np.ndarray:
    """(n, n) cluster transitions: mostly to the next cluster, sometimes a jump of 5 or a stay, rarely anywhere."""
    matrix = np.full((n, n), 0.1 / n)
    for c in range(n):
        matrix[c, (c + 1) % n] += 0.5
        matrix[c, (c + 5) % n] += 0.2
        matrix[c, c] += 0.2
    return matrix / matrix.sum(axis=1, keepdims=True)


def recency_weights(n: int) -> np.ndarray:
    """Weights over the last `n` items, oldest first: a recent item is the likelier repeat."""
    weights = 0.85 ** np.arange(n)[::-1]
    return weights / weights.sum()


SHAPES: dict[str, Callable[[np.random.Generator, float], Log]] = {
    "tiny": tiny, "dense": dense, "sessions": sessions, "tiny_ratings": tiny_ratings, "tiny_repeats": tiny_repeats}


def write_shape(shape: str, out_dir: Path | str, seed: int = 0, scale: float = 1.0) -> Path:
    """Generate `shape`, write its files and config into `out_dir`; returns the config path. Paths in the config
    are absolute, so it runs from any folder; its outputs go to OUT_DIR/run."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    log = SHAPES[shape](np.random.default_rng(seed), scale)
    log.interactions.to_csv(out_dir / "interactions.csv", index=False)
    log.items.to_csv(out_dir / "items.csv", index=False)
    config = {
        "name": f"synthetic-{shape}",
        "output_dir": str(out_dir / "run"),
        "data": {
            "source": "generic",
            "interactions": {"path": str(out_dir / "interactions.csv"), **log.mapping},
            "items": {"path": str(out_dir / "items.csv"), "columns": {"item_id": "item"}, "text": ["title"],
                      "categorical": ["category"], "numeric": ["price"]},
        },
    }
    path = out_dir / "config.yaml"
    path.write_text(f"# synthetic '{shape}' log (seed {seed}, scale {scale}): data mapping only, all else default\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies user and item counts")
    args = parser.parse_args()
    print(write_shape(args.shape, args.out_dir, seed=args.seed, scale=args.scale))


if __name__ == "__main__":
    main()
