"""Storage URLs, SQLite settings, heartbeats and artifacts for Optuna studies."""
