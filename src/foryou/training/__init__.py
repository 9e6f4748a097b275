"""The model-agnostic training loop (trainer.py) and its callbacks: early stopping, history, MLflow."""
