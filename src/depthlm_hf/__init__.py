"""DepthLM on transformers and TRL."""
