"""The "For You" HTTP service: bundle, store, request -> result, routes."""
