"""One contract for every model family (nanoGPT's shape): a Config dataclass with named
PRESETS and Config.preset(name, **overrides), and train_<family>(cfg, data, n_steps, *,
device, seed, progress) returning a coursekit.Run, without touching the global RNG."""
import dataclasses
import importlib
import inspect

import pytest
import torch

from coursekit.train import Run

FAMILIES = {   # module: (Config class, training function or None for the fitted-by-counting ones)
    "coursekit.models.gpt": ("GPTConfig", None),
    "coursekit.lm": (None, "train_lm"),
    "coursekit.models.gan": ("GANConfig", "train_gan"),
    "coursekit.models.vae": ("VAEConfig", "train_vae"),
    "coursekit.models.diffusion": ("DiffusionConfig", "train_diffusion"),
    "coursekit.models.unet": ("UNetConfig", None),
    "coursekit.models.markov": ("MarkovConfig", None),
    "coursekit.models.mixture": ("MixtureConfig", None),
}
CONFIGS = [(m, c) for m, (c, _) in FAMILIES.items() if c]
TRAINERS = [(m, t) for m, (_, t) in FAMILIES.items() if t]


@pytest.mark.parametrize("module,name", CONFIGS)
def test_every_config_has_presets_and_preset(module, name):
    mod = importlib.import_module(module)
    cls = getattr(mod, name)
    assert dataclasses.is_dataclass(cls)
    assert mod.PRESETS and all(isinstance(v, cls) for v in mod.PRESETS.values())
    first = next(iter(mod.PRESETS))
    assert cls.preset(first) == mod.PRESETS[first] and cls.preset(first) is not mod.PRESETS[first]
    field = dataclasses.fields(cls)[0].name
    with pytest.raises(KeyError, match="presets"):
        cls.preset("no-such-preset")
    with pytest.raises(TypeError, match="no field"):
        cls.preset(first, no_such_field=1)
    assert hasattr(cls.preset(first), field)


@pytest.mark.parametrize("module,name", TRAINERS)
def test_every_training_function_has_the_contract_signature(module, name):
    fn = getattr(importlib.import_module(module), name)
    params = inspect.signature(fn).parameters
    assert list(params)[:3] == ["cfg", "data", "n_steps"], list(params)
    for keyword in ("device", "seed", "progress"):
        assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, keyword
    assert inspect.signature(fn).return_annotation in ("Run", "LMRun", "GANRun", "DiffusionRun")


def test_run_subclasses_share_model_history_config():
    from coursekit.lm import LMRun
    from coursekit.models.diffusion import DiffusionRun
    from coursekit.models.gan import GANRun
    for cls in (LMRun, GANRun, DiffusionRun):
        assert issubclass(cls, Run)
        assert [f.name for f in dataclasses.fields(cls)][:4] == ["model", "history", "config", "seconds"]


def test_one_ema_and_one_sinusoidal_encoding():
    from coursekit.models import diffusion, ema, embeddings, gpt, unet
    assert diffusion.EMA is ema.EMA
    t = torch.arange(12)
    torch.testing.assert_close(gpt.sinusoidal_positions(12, 16), embeddings.sinusoidal_embedding(t, 16))
    e = embeddings.sinusoidal_embedding(t, 16)
    # the U-Net's layout is the same numbers, cosines first
    torch.testing.assert_close(unet.timestep_embedding(t, 16), torch.cat([e[:, 1::2], e[:, 0::2]], 1))
    assert not hasattr(gpt, "MLP"), "the block's feed-forward net is FeedForward; MLP is chapter 02's"
