"""What one trial trains: the shared training loop and the models it trains."""
