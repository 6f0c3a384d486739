"""cotrain: one model, many tasks, many modalities.

Co-train a single transformer on image, video, audio, text and vision-and-language tasks, and
measure what co-training does. ``cotrain.load(checkpoint).predict(task, inputs)`` is the inference API;
``cotrain.Trainer`` the training loop; ``cotrain.load_config`` the typed experiment schema.
"""

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: `import cotrain` stays cheap (no torch import for `cotrain --help`)
    if name in ("load", "Predictor"):
        from . import api

        return getattr(api, name)
    if name in ("load_config", "ExperimentConfig", "ConfigError"):
        from . import config

        return getattr(config, name)
    if name == "Trainer":
        from .train.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'cotrain' has no attribute {name!r}")


__all__ = ["load", "Predictor", "load_config", "ExperimentConfig", "ConfigError", "Trainer", "__version__"]
