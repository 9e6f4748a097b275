"""Good settings without hand-tuning: defaults derived from the data's shape, and a time-budgeted search."""
