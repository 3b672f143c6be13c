"""hbmplan: per-device HBM planning for sglang-jax and RL training on Cloud TPU."""


def __getattr__(name: str):
    """Lazy exports: ``planner.sweep`` imports pandas/numpy only when first used."""
    if name == "sweep":
        import importlib

        fn = importlib.import_module("planner.grid").sweep
        globals()["sweep"] = fn
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
