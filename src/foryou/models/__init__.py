"""Everything that recommends implements `Recommender` (base.py): baselines, the two-tower model, blends."""
