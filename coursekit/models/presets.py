"""Named configurations: one way for every model family.

Each family's ``Config`` dataclass sits beside a module-level ``PRESETS`` dict of
instances and inherits :class:`Presets`, so ``GANConfig.preset("digits", hidden=64)``,
``GPTConfig.preset("story", vocab_size=V)`` and the others all work alike (nanoGPT's
``GPTConfig`` and minGPT's ``gpt-nano`` are the model).
"""
from __future__ import annotations

import sys
from dataclasses import replace


class Presets:
    """Mixin for a config dataclass whose module defines ``PRESETS: dict[str, Config]``."""

    @classmethod
    def presets(cls) -> dict:
        """The family's named configurations."""
        return sys.modules[cls.__module__].PRESETS

    @classmethod
    def preset(cls, name: str, **overrides):
        """A copy of the named configuration with some fields changed."""
        presets = cls.presets()
        if name not in presets:
            raise KeyError(f"no {cls.__name__} preset {name!r}; presets: {', '.join(presets)}")
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}; "
                            f"fields: {', '.join(cls.__dataclass_fields__)}")
        return replace(presets[name], **overrides)
