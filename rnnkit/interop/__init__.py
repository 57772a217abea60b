"""Weights in and out of other frameworks' layouts (PyTorch state dicts, ONNX RNN operators)."""
