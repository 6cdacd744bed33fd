"""Trained models that later chapters reuse, built once on this machine and cached.

A chapter that needs the course's story model or a digit model asks the zoo instead of
retraining it::

    run = ck.zoo.load("story-gpt")          # an LMRun: run.model, run.tokenizer, run.sample(...)
    vae = ck.zoo.load("digit-vae").model
    ck.zoo.available()                      # name -> what it is and whether it is cached

The first call trains the model with its lesson's recipe (a progress bar shows it; about a
minute each on a 2-core CPU) and keeps the weights under the cache folder
(``$COURSEKIT_CACHE``, else ``~/.cache/coursekit``), in ``zoo/<name>-<key>.pt``. Nothing
is downloaded. The ``key`` is a hash of the entry's recipe, the source code of the modules
that define and train the model, and the mode (fast mode trains tiny models, kept apart),
so a change of code never loads weights made by older code.

Every file is written with its SHA-256 digest beside it (``.sha256``) and read with
``torch.load(weights_only=True)``. A file whose digest differs, that does not load, or
whose contents do not fit the model is reported by name and rebuilt, never trusted.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from coursekit.lm import LMTrainConfig
from coursekit.runtime import fast_mode
from coursekit.train import History, Run

CACHE_ENV = "COURSEKIT_CACHE"


class CacheWarning(UserWarning):
    """A cached file was unusable (and is being rebuilt) or stale (and was removed)."""


@dataclass(frozen=True)
class Entry:
    """One model of the zoo.

    Attributes:
        name: what ``load`` takes, e.g. ``"story-gpt"``.
        about: one line for learners: what it is and which lesson trains it.
        recipe: the settings it is trained with (part of the cache key).
        modules: modules whose source code is part of the cache key.
        build: ``build(recipe, device, progress) -> dict``: trains, returns the state to save.
        restore: ``restore(state, device) -> Run``: rebuilds the run from that state.
    """

    name: str
    about: str
    recipe: dict
    modules: tuple[str, ...]
    build: Callable[[dict, torch.device, bool], dict]
    restore: Callable[[dict, torch.device], Run]


_ENTRIES: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    """Add ``entry`` to the zoo (a later chapter may register its own models)."""
    _ENTRIES[entry.name] = entry
    return entry


def cache_dir() -> Path:
    """Where the zoo keeps its files: ``$COURSEKIT_CACHE/zoo`` or ``~/.cache/coursekit/zoo``."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coursekit"
    return Path(root) / "zoo"


def _entry(name: str) -> Entry:
    if name not in _ENTRIES:
        raise KeyError(f"no model {name!r} in the zoo; it has: {', '.join(sorted(_ENTRIES))}")
    return _ENTRIES[name]


def _recipe(entry: Entry, mode: str | None = None) -> dict:
    """The entry's recipe with the mode-dependent training length resolved."""
    mode = _mode(mode)
    recipe = dict(entry.recipe)
    steps = recipe.pop("n_steps")
    recipe["n_steps"] = steps[1] if mode == "fast" else steps[0]
    recipe["mode"] = mode
    return recipe


def cache_key(name: str, mode: str | None = None) -> str:
    """12 hex digits naming the recipe, the code and the mode the model is built with."""
    entry = _entry(name)
    h = hashlib.sha256()
    h.update(json.dumps(_recipe(entry, mode), sort_keys=True, default=str).encode())
    for module in entry.modules:
        h.update(inspect.getsource(__import__(module, fromlist=["_"])).encode())
    h.update(torch.__version__.split("+")[0].encode())
    return h.hexdigest()[:12]


def path(name: str, mode: str | None = None) -> Path:
    """The file ``load(name, mode=mode)`` reads or writes now."""
    mode = _mode(mode)
    return cache_dir() / f"{name}-{mode}-{cache_key(name, mode)}.pt"


MODES = ("fast", "full")


def _mode(mode: str | None = None) -> str:
    """``mode`` checked, or the session's mode: "fast" under COURSEKIT_FAST, else "full"."""
    if mode is None:
        return "fast" if fast_mode() else "full"
    if mode not in MODES:
        raise ValueError(f"mode must be 'fast', 'full' or None (the session's mode), got {mode!r}")
    return mode


def _digest(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read(name: str, file: Path, device: torch.device, mode: str | None = None) -> Run:
    """Load and verify a cached file; raises ValueError saying what is wrong with it."""
    sidecar = file.with_suffix(".sha256")
    if not sidecar.is_file():
        raise ValueError("its .sha256 file is missing")
    if _digest(file) != sidecar.read_text().strip():
        raise ValueError("its SHA-256 digest does not match the one written with it (corrupt or changed)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:   # an unpickling error, a truncated archive, ...
        raise ValueError(f"torch.load refused it ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(state, dict) or state.get("zoo") != name or state.get("key") != cache_key(name, mode):
        raise ValueError("it was made for another model or another version of the code")
    try:
        return _entry(name).restore(state["payload"], device)
    except Exception as err:
        raise ValueError(f"its weights do not fit the model ({type(err).__name__}: {str(err)[:120]})") from None


def _write(name: str, file: Path, payload: dict, mode: str | None = None) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    torch.save({"zoo": name, "key": cache_key(name, mode), "payload": payload}, tmp)
    digest = _digest(tmp)
    os.replace(tmp, file)                          # atomic: a reader never sees half a file
    file.with_suffix(".sha256").write_text(digest + "\n")


def _remove_stale(name: str, keep: Path, mode: str | None = None) -> None:
    """Remove this model's files made by other code or recipes, in this mode only: the
    fast-mode file (the tests') and the full one (the lessons') live side by side. Files
    named before the mode was part of the name are removed too."""
    mine = f"{name}-{_mode(mode)}"
    for old in cache_dir().glob(f"{name}-*.pt"):
        if old != keep and old.stem.rsplit("-", 1)[0] in (mine, name):
            warnings.warn(f"removed {old}: made by an older version of the code or recipe",
                          CacheWarning, stacklevel=3)
            old.unlink(missing_ok=True)
            old.with_suffix(".sha256").unlink(missing_ok=True)


def load(name: str, device=None, progress: bool = True, rebuild: bool = False,
         mode: str | None = None) -> Run:
    """The trained model ``name``, from the cache or trained now (and then cached).

    Args:
        name: a model of the zoo (``available()`` lists them).
        device: where to put it (default CPU); it is trained on this device if not cached.
        progress: show the training progress bar.
        rebuild: train again even if a good file is cached.
        mode: "full" or "fast" to ask for that mode's model whatever the session's mode is
            (a lesson that means nothing on an untrained model asks for "full" even under
            the tests' fast mode); None (the default) follows ``COURSEKIT_FAST``.
    Returns:
        A ``Run`` (for language models an ``LMRun``) with the model in eval mode.
    """
    entry = _entry(name)
    device = torch.device(device or "cpu")
    mode = _mode(mode)
    file = path(name, mode)
    if file.exists() and not rebuild:
        try:
            return _read(name, file, device, mode)
        except ValueError as why:
            warnings.warn(f"the cached model {file} is not usable: {why}; training it again",
                          CacheWarning, stacklevel=2)
    with torch.enable_grad():       # a caller inside torch.no_grad() still gets a trained model
        payload = entry.build(_recipe(entry, mode), device, progress)
    try:
        _write(name, file, payload, mode)
    except OSError as err:   # a read-only home, a full disk, the grading sandbox
        warnings.warn(f"could not keep {name} in the cache at {file} ({err}); using it without "
                      f"caching (set {CACHE_ENV} to a writable folder to keep it)",
                      CacheWarning, stacklevel=2)
        return entry.restore(payload, device)
    _remove_stale(name, file, mode)
    return _read(name, file, device, mode)


def available() -> dict[str, str]:
    """Each model of the zoo, what it is, and whether it is cached now."""
    return {name: f"{e.about} [{'cached' if path(name).exists() else 'not built yet'}]"
            for name, e in sorted(_ENTRIES.items())}


# --- the course's models ---------------------------------------------------------------------

def _cpu(state_dict: dict) -> dict:
    return {k: v.detach().cpu() for k, v in state_dict.items()}


def _build_story_gpt(recipe: dict, device: torch.device, progress: bool) -> dict:
    from coursekit.data import story_corpus
    from coursekit.lm import LMData, lm_state, train_lm
    from coursekit.models.gpt import GPTConfig
    data = LMData.from_text(story_corpus(recipe["n_stories"], seed=recipe["corpus_seed"]))
    cfg = GPTConfig.preset(recipe["preset"], vocab_size=data.tokenizer.vocab_size)
    run = train_lm(cfg, data, recipe["n_steps"], device=device, seed=recipe["seed"],
                   progress=progress, train_config=LMTrainConfig(**recipe["train"]),
                   desc=recipe.get("desc", "story-gpt (first use: training once)"))
    return lm_state(run)


def _restore_story_gpt(state: dict, device: torch.device) -> Run:
    from coursekit.lm import lm_from_state
    return lm_from_state(state, device)


register(Entry(
    name="story-gpt",
    about="character-level GPT (3 blocks x 96) on 3,000 generated stories: lesson 06's model",
    recipe={"preset": "story", "n_stories": 3000, "corpus_seed": 0, "seed": 0,
            "n_steps": (800, 20), "train": asdict(LMTrainConfig())},
    modules=("coursekit.models.gpt", "coursekit.lm", "coursekit.data.stories", "coursekit.data.text"),
    build=_build_story_gpt, restore=_restore_story_gpt))

# An independent judge of the story model's text (lesson 13): another, smaller GPT, trained
# from another seed on another draw of 3,000 stories from the same world. A model scored by
# itself would call its own favourite phrases the best text.
register(Entry(
    name="story-gpt-scorer",
    about="smaller character-level GPT (3 blocks x 64) on another 3,000 stories, another seed: "
          "lesson 13's likelihood judge",
    recipe={"preset": "gpt-nano", "n_stories": 3000, "corpus_seed": 1, "seed": 1,
            "n_steps": (600, 20), "train": asdict(LMTrainConfig()),
            "desc": "story-gpt-scorer (first use: training once)"},
    modules=("coursekit.models.gpt", "coursekit.lm", "coursekit.data.stories", "coursekit.data.text"),
    build=_build_story_gpt, restore=_restore_story_gpt))


def _build_digit_vae(recipe: dict, device: torch.device, progress: bool) -> dict:
    from coursekit.models.vae import VAEConfig, train_vae
    cfg = VAEConfig.preset(recipe["preset"])
    run = train_vae(cfg, None, recipe["n_steps"], seed=recipe["seed"], device=device,
                    progress=progress)
    return {"config": asdict(cfg), "state_dict": _cpu(run.model.state_dict()),
            "history": run.history.state()}


def _restore_digit_vae(state: dict, device: torch.device) -> Run:
    from coursekit.models.vae import VAE, VAEConfig
    cfg = VAEConfig(**state["config"])
    model = VAE(cfg)
    model.load_state_dict(state["state_dict"], strict=True)
    return Run(model.to(device).eval(), History.from_state(state["history"]), cfg)


register(Entry(
    name="digit-vae",
    about="VAE with a 2-D latent on the 8x8 digits (binarised): lesson 05's model",
    recipe={"preset": "digits-2d", "seed": 0, "n_steps": (2500, 40)},
    modules=("coursekit.models.vae",),
    build=_build_digit_vae, restore=_restore_digit_vae))


def _build_digit_gan(recipe: dict, device: torch.device, progress: bool) -> dict:
    from coursekit.data import load_digits
    from coursekit.models import gan
    cfg = gan.GANConfig.preset(recipe["preset"])
    run = gan.train_gan(cfg, load_digits(seed=0).x_train, recipe["n_steps"], device=device,
                        seed=recipe["seed"], progress=progress, desc="digit-gan (first use)")
    return {"config": asdict(cfg), "state_dict": _cpu(run.generator.state_dict()),
            "history": run.history.state()}


def _restore_digit_gan(state: dict, device: torch.device) -> Run:
    from coursekit.models import gan
    cfg = gan.GANConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()})
    G, _ = gan.make_gan(cfg, "cpu")
    G.load_state_dict(state["state_dict"], strict=True)
    return Run(G.to(device).eval(), History.from_state(state["history"]), cfg)


register(Entry(
    name="digit-gan",
    about="MLP GAN with an island latent on the 8x8 digits (averaged generator): lesson 04's model",
    recipe={"preset": "digits", "seed": 0, "n_steps": (3000, 30)},
    modules=("coursekit.models.gan",),
    build=_build_digit_gan, restore=_restore_digit_gan))


def _build_digit_diffusion(recipe: dict, device: torch.device, progress: bool) -> dict:
    from coursekit.data import load_digits
    from coursekit.models.diffusion import DiffusionConfig, to_model_range, train_diffusion
    cfg = DiffusionConfig.preset(recipe["preset"])
    run = train_diffusion(cfg, to_model_range(load_digits(seed=0).x_train), recipe["n_steps"],
                          device=device, seed=recipe["seed"], progress=progress,
                          desc="digit-diffusion (first use)")
    return {"state_dict": _cpu(run.ema_model.state_dict()), "history": run.history.state()}


def _restore_digit_diffusion(state: dict, device: torch.device) -> Run:
    from coursekit.models.diffusion import DiffusionConfig, NoiseSchedule
    from coursekit.models.unet import UNet
    cfg = DiffusionConfig.preset("digits")
    model = UNet(cfg.unet)
    model.load_state_dict(state["state_dict"], strict=True)
    run = Run(model.to(device).eval(), History.from_state(state["history"]), cfg)
    run.schedule = NoiseSchedule.from_config(cfg).to(device)   # what the samplers need beside it
    return run


register(Entry(
    name="digit-diffusion",
    about="epsilon-predicting U-Net (T = 100, cosine schedule) on the 8x8 digits, EMA weights: lesson 07's model",
    recipe={"preset": "digits", "seed": 0, "n_steps": (1500, 30)},
    modules=("coursekit.models.diffusion", "coursekit.models.unet"),
    build=_build_digit_diffusion, restore=_restore_digit_diffusion))


def _build_digit_cfg(recipe: dict, device: torch.device, progress: bool) -> dict:
    from coursekit.models.cond_diffusion import train_digit_cfg
    run = train_digit_cfg(recipe["n_steps"], device=device, seed=recipe["seed"], progress=progress,
                          p_uncond=recipe["p_uncond"])
    return {"state_dict": _cpu(run.ema_model.state_dict()), "history": run.history.state(),
            "p_uncond": recipe["p_uncond"]}


def _restore_digit_cfg(state: dict, device: torch.device) -> Run:
    from coursekit.models.cond_diffusion import CondDiffusionConfig, CondUNet
    from coursekit.models.diffusion import NoiseSchedule
    cfg = CondDiffusionConfig.preset("digits", p_uncond=state["p_uncond"])
    model = CondUNet(cfg.unet, cfg.n_classes)
    model.load_state_dict(state["state_dict"], strict=True)
    run = Run(model.to(device).eval(), History.from_state(state["history"]), cfg)
    run.schedule = NoiseSchedule.from_config(cfg).to(device)   # what guided_sample needs beside it
    return run


register(Entry(
    name="digit-cfg",
    about="class-conditional U-Net (labels 0-9 and a null class, p_uncond = 0.1) on the 8x8 digits, "
          "EMA weights, for classifier-free guidance: lesson 14's model",
    recipe={"seed": 0, "p_uncond": 0.1, "n_steps": (1200, 30)},
    modules=("coursekit.models.cond_diffusion", "coursekit.models.diffusion", "coursekit.models.unet"),
    build=_build_digit_cfg, restore=_restore_digit_cfg))


# --- chapter 15 ---
# Lesson 15's four character-level GPTs: standard-library code, folk tunes, SMILES and SELFIES.
# Trained once (a few minutes each on a CPU), then cached, so the lesson only samples and measures.

def _ch15_text(corpus: str) -> tuple[str, dict]:
    """The training text of one of lesson 15's corpora, and what the run must carry beside it."""
    if corpus == "code":
        from coursekit.data.stdlib_code import stdlib_corpus
        text, names = stdlib_corpus(300_000)
        return text, {"files": names}
    if corpus == "tunes":
        from coursekit.data.tunes import load_tunes, tune_corpus
        return tune_corpus(load_tunes()), {}
    from coursekit.data.smiles import SelfiesAlphabet, load_smiles, smiles_corpus, to_selfies
    smiles = load_smiles()
    if corpus == "smiles":
        return smiles_corpus(smiles), {}
    selfies = to_selfies(smiles)
    alphabet = SelfiesAlphabet.of(selfies)
    return smiles_corpus([alphabet.encode(s) for s in selfies]), {"selfies_symbols": alphabet.symbols}


def _build_ch15_lm(recipe: dict, device: torch.device, progress: bool) -> dict:
    from coursekit.lm import LMData, lm_state, train_lm
    from coursekit.models.gpt import GPTConfig
    text, extra = _ch15_text(recipe["corpus"])
    data = LMData.from_text(text)
    cfg = GPTConfig.preset(recipe["preset"], vocab_size=data.tokenizer.vocab_size,
                           block_size=recipe["block_size"])
    run = train_lm(cfg, data, recipe["n_steps"], device=device, seed=recipe["seed"], progress=progress,
                   train_config=LMTrainConfig(**recipe["train"]), desc=recipe["desc"])
    return {"lm": lm_state(run), "extra": extra}


def _restore_ch15_lm(state: dict, device: torch.device) -> Run:
    from coursekit.lm import lm_from_state
    run = lm_from_state(state["lm"], device)
    run.extra = dict(state["extra"])            # the code model's file names, the SELFIES alphabet
    return run


for _name, _corpus, _preset, _block, _steps, _about in [
        ("code-gpt", "code", "story", 128, (1500, 20),
         "character-level GPT (3 blocks x 96) on 300,000 characters of the standard library's source"),
        ("tune-gpt", "tunes", "story", 128, (1200, 20),
         "character-level GPT (3 blocks x 96) on music21's Irish folk tunes (ABC, canonical form)"),
        ("smiles-gpt", "smiles", "gpt-nano", 64, (1200, 20),
         "character-level GPT (3 blocks x 64) on about 6,000 SMILES from RDKit's data files"),
        ("selfies-gpt", "selfies", "gpt-nano", 64, (1200, 20),
         "GPT (3 blocks x 64) on the same molecules as SELFIES, one token per SELFIES symbol")]:
    register(Entry(
        name=_name, about=_about + ": lesson 15's model",
        recipe={"corpus": _corpus, "preset": _preset, "block_size": _block, "seed": 0, "n_steps": _steps,
                "train": asdict(LMTrainConfig()), "desc": f"{_name} (first use: training once)"},
        modules=("coursekit.models.gpt", "coursekit.lm", "coursekit.data.text",
                 {"code": "coursekit.data.stdlib_code", "tunes": "coursekit.data.tunes"}.get(_corpus,
                                                                                         "coursekit.data.smiles")),
        build=_build_ch15_lm, restore=_restore_ch15_lm))
