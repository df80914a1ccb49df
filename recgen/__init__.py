"""recgen: one LLM that generates a candidate slate and ranks it, trained with F-GRPO."""

__version__ = "0.1.0"

__all__ = ["Recommendation", "Recommender", "__version__"]


def __getattr__(name: str):
    """``from recgen import Recommender`` without importing torch at ``import recgen``."""
    if name in ("Recommender", "Recommendation"):
        from recgen import recommender

        return getattr(recommender, name)
    raise AttributeError(f"module 'recgen' has no attribute {name!r}")
