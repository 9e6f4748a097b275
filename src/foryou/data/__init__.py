"""Data layer: adapters bring any source into one canonical schema; cleaning, filtering and splits work on that."""
