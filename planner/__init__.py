"""hbmplan: per-device HBM planning for sglang-jax and RL training on Cloud TPU."""
