"""Training objectives that sit apart from the towers: the retrieval loss (tasks/retrieval.py) and DAT (tasks/dat.py)."""
