"""foryou: two-tower retrieval, strong baselines and honest evaluation from an interaction log and a catalog."""

__version__ = "0.1.0"
