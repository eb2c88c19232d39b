"""Inference: the predictor, point clouds and the optional vLLM backend."""
