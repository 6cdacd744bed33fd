"""The trained-model cache: built once, loaded after, corrupt or stale files rebuilt, never trusted."""
import warnings

import pytest
import torch

from coursekit import zoo
from coursekit.lm import LMRun


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("COURSEKIT_FAST", "1")
    return tmp_path / "zoo"


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _calls(monkeypatch, name):
    """Count how often the entry's build runs."""
    entry = zoo._ENTRIES[name]
    count = {"n": 0}

    def build(*args):
        count["n"] += 1
        return entry.build(*args)

    monkeypatch.setitem(zoo._ENTRIES, name, zoo.Entry(entry.name, entry.about, entry.recipe,
                                                      entry.modules, build, entry.restore))
    return count


def test_first_load_builds_and_the_second_reads_the_cache(cache, monkeypatch):
    count = _calls(monkeypatch, "story-gpt")
    first = zoo.load("story-gpt", progress=False)
    assert count["n"] == 1 and isinstance(first, LMRun)
    assert zoo.path("story-gpt").exists() and zoo.path("story-gpt").parent == cache
    second = zoo.load("story-gpt", progress=False)
    assert count["n"] == 1, "a good cached file must not be rebuilt"
    assert _same_weights(first.model, second.model)
    assert second.sample("Once", 10, temperature=0).startswith("Once")
    assert "cached" in zoo.available()["story-gpt"]


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete digest", "replace with a pickle"])
def test_a_corrupt_file_is_named_and_rebuilt(cache, monkeypatch, damage):
    count = _calls(monkeypatch, "digit-vae")
    good = zoo.load("digit-vae", progress=False)
    file = zoo.path("digit-vae")
    raw = bytearray(file.read_bytes())
    if damage == "flip a byte":
        raw[len(raw) // 2] ^= 0xFF
        file.write_bytes(bytes(raw))
    elif damage == "truncate":
        file.write_bytes(bytes(raw[: len(raw) // 3]))
    elif damage == "delete digest":
        file.with_suffix(".sha256").unlink()
    else:   # a file that would run code if loaded without weights_only, with a digest to match
        import hashlib
        import pickle

        class Evil:
            def __reduce__(self):
                return (exec, ("raise SystemExit('code ran')",))
        file.write_bytes(pickle.dumps(Evil()))
        file.with_suffix(".sha256").write_text(hashlib.sha256(file.read_bytes()).hexdigest())
    with pytest.warns(zoo.CacheWarning, match=str(file.name)):
        rebuilt = zoo.load("digit-vae", progress=False)
    assert count["n"] == 2
    assert _same_weights(good.model, rebuilt.model)     # the recipe is deterministic
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # and now it is trusted again
        zoo.load("digit-vae", progress=False)


def test_a_file_of_another_version_is_stale_and_removed(cache, monkeypatch):
    zoo.load("digit-vae", progress=False)
    old = zoo.path("digit-vae")
    entry = zoo._ENTRIES["digit-vae"]
    changed = zoo.Entry(entry.name, entry.about, {**entry.recipe, "seed": 1}, entry.modules,
                        entry.build, entry.restore)
    monkeypatch.setitem(zoo._ENTRIES, "digit-vae", changed)
    assert zoo.path("digit-vae") != old, "a new recipe must give a new key"
    with pytest.warns(zoo.CacheWarning, match="older version"):
        zoo.load("digit-vae", progress=False)
    assert not old.exists() and zoo.path("digit-vae").exists()


def test_fast_and_full_mode_never_share_a_file(cache, monkeypatch):
    fast = zoo.path("story-gpt")
    monkeypatch.setenv("COURSEKIT_FAST", "0")
    assert zoo.path("story-gpt") != fast


def test_a_lesson_can_ask_for_the_full_model_under_fast_mode(cache, monkeypatch):
    """Lesson 11 aligns a model that must already write the story world's endings: it asks for
    mode="full" even in the tests' fast mode, and gets the file a learner's session would."""
    entry = zoo._ENTRIES["digit-vae"]
    recipes = []

    def build(recipe, *args):
        recipes.append(recipe)
        return entry.build(recipe, *args)

    monkeypatch.setitem(zoo._ENTRIES, "digit-vae", zoo.Entry(
        entry.name, entry.about, {**entry.recipe, "n_steps": (3, 2)}, entry.modules, build, entry.restore))
    full = zoo.path("digit-vae", mode="full")
    assert full != zoo.path("digit-vae") and "-full-" in full.name
    monkeypatch.setenv("COURSEKIT_FAST", "0")
    assert zoo.path("digit-vae") == full
    monkeypatch.setenv("COURSEKIT_FAST", "1")
    zoo.load("digit-vae", progress=False, mode="full")
    assert [(r["n_steps"], r["mode"]) for r in recipes] == [(3, "full")], "the full recipe, not the fast one"
    assert full.exists() and not zoo.path("digit-vae").exists()
    with pytest.raises(ValueError, match="mode must be"):
        zoo.load("digit-vae", mode="quick")


def test_cleaning_up_one_mode_keeps_the_other_modes_file(cache, monkeypatch):
    """The tests build fast-mode models and the lessons full ones, in the same cache: a
    rebuild in one mode must not delete the other's (it cost a 10-minute retrain)."""
    monkeypatch.setenv("COURSEKIT_FAST", "0")
    cache.mkdir(parents=True, exist_ok=True)
    keep = zoo.path("digit-vae")
    other_fast = cache / "digit-vae-fast-0123456789ab.pt"
    old_full = cache / "digit-vae-full-0123456789ab.pt"
    legacy = cache / "digit-vae-0123456789ab.pt"
    neighbour = cache / "digit-vae-large-full-0123456789ab.pt"
    for f in (keep, other_fast, old_full, legacy, neighbour):
        f.write_bytes(b"x")
    with pytest.warns(zoo.CacheWarning):
        zoo._remove_stale("digit-vae", keep)
    assert keep.exists() and other_fast.exists() and neighbour.exists()
    assert not old_full.exists() and not legacy.exists()


@pytest.mark.parametrize("name", ["digit-gan", "digit-diffusion"])
def test_image_models_round_trip(cache, name):
    run = zoo.load(name, progress=False)
    again = zoo.load(name, progress=False)
    assert _same_weights(run.model, again.model) and not again.model.training
    if name == "digit-gan":
        from coursekit.models.gan import sample
        x = sample(again.model, 4, seed=0)
    else:
        from coursekit.models.diffusion import ddim_sample
        x = ddim_sample(again.model, again.schedule, n=4, n_steps=3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()


def test_unknown_name_lists_the_zoo(cache):
    with pytest.raises(KeyError, match="story-gpt"):
        zoo.load("no-such-model")


def test_an_unwritable_cache_still_gives_the_model(cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")
    monkeypatch.setattr(zoo, "_write", refuse)
    with pytest.warns(zoo.CacheWarning, match="without caching"):
        run = zoo.load("digit-vae", progress=False)
    assert not run.model.training and not zoo.path("digit-vae").exists()


def test_a_first_load_inside_no_grad_still_trains(cache):
    """Lesson code often loads a model inside ``torch.no_grad()``; the build must still learn."""
    with torch.no_grad():
        run = zoo.load("digit-vae", progress=False)
    assert torch.is_grad_enabled()
    losses = run.history["loss"]
    assert losses[-1] < losses[0], "the model was not trained"
