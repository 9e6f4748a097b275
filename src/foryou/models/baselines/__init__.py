"""Non-neural baselines the two-tower model must beat: popularity, item kNN, EASE and ALS."""

from foryou.models.baselines.als import ALS
from foryou.models.baselines.ease import EASE
from foryou.models.baselines.item_knn import ItemKNN
from foryou.models.baselines.popularity import MostPop, RecentPop

__all__ = ["ALS", "EASE", "ItemKNN", "MostPop", "RecentPop"]
