"""Data sets: digits, 2-D toys, the story corpus, text tools, the opt-in Shakespeare."""
import random
import shutil
from pathlib import Path

import pytest
import torch

from coursekit import data as D
from coursekit.data import shakespeare
from nbtools import ROOT

SHARED_SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def test_digits_split_is_seeded_and_scaled():
    a, b = D.load_digits(seed=1), D.load_digits(seed=1)
    assert a.x_train.shape[1:] == (1, 8, 8) and len(a.x_train) + len(a.x_val) == 1797
    assert torch.equal(a.y_val, b.y_val) and not torch.equal(a.y_val, D.load_digits(seed=2).y_val)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert set(a.y_train.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="val_fraction"):
        D.load_digits(val_fraction=1.5)


def test_ring_of_gaussians_statistics():
    x, mode = D.ring_of_gaussians(n=4000, std=0.02)
    centres = D.ring_centers(8, 2.0)
    dist = (x - centres[mode]).norm(dim=1)
    assert dist.mean().item() == pytest.approx(0.02 * (torch.pi / 2) ** 0.5, rel=0.1)
    assert centres.norm(dim=1).allclose(torch.full((8,), 2.0))
    assert torch.bincount(mode, minlength=8).min() > 400


def test_grid_of_gaussians_has_25_centres_spaced_2():
    c = D.grid_centers(5, 2.0)
    assert c.shape == (25, 2) and c.min() == -4 and c.max() == 4
    x, mode = D.grid_of_gaussians(n=1000)
    assert ((x - c[mode]).abs().max() < 0.05 * 6)


@pytest.mark.parametrize("make", [D.make_moons, D.spirals, D.two_blobs])
def test_labelled_toys_are_seeded_and_balanced(make):
    x1, y1 = make(n=200, seed=5)
    x2, y2 = make(n=200, seed=5)
    assert x1.shape == (200, 2) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert abs(int((y1 == 0).sum()) - 100) <= 1
    with pytest.raises(ValueError, match="positive int"):
        make(n=0)


def test_story_corpus_is_deterministic_natural_and_structured():
    text = D.story_corpus(n_stories=200, seed=3)
    assert text == D.story_corpus(n_stories=200, seed=3)
    stories = text.strip().split("\n\n")
    assert len(stories) == 200
    assert all(s[0].isupper() and s.endswith(".") for s in stories)
    assert " a a" not in text and " an c" not in text and " a e" not in text


def test_story_world_facts_hold_in_every_story():
    world = D.StoryWorld(seed=0)
    for story in world.stories(300, seed=1):
        assert story.town in story.text and story.name in story.text
        for town, thing in world.known_for.items():
            if f"{town} is known for" in story.text:
                assert f"{town} is known for {thing}" in story.text


@pytest.mark.parametrize("bias", [0.5, 0.9])
def test_story_bias_knob_sets_the_measured_skew(bias):
    from coursekit.data.stories import PROFESSIONS
    stories = D.StoryWorld(seed=0, bias=bias).stories(4000, seed=0)
    stereotyped = sum(s.pronoun == PROFESSIONS[s.profession] for s in stories) / len(stories)
    assert stereotyped == pytest.approx(bias, abs=0.03)


def test_char_tokenizer_round_trip_and_errors():
    tok = D.CharTokenizer("hello world")
    ids = tok.encode("hello")
    assert ids.dtype == torch.int64 and tok.decode(ids) == "hello"
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tok.encode("xyz")
    with pytest.raises(ValueError):
        D.CharTokenizer("")


def test_get_batch_targets_are_inputs_shifted_by_one():
    data = torch.arange(100)
    x, y = D.get_batch(data, block_size=8, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and torch.equal(y, x + 1)
    train, val = D.split_text(data, 0.1)
    assert len(train) == 90 and val[0] == 90


# -- the opt-in Shakespeare text --------------------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_CACHE", str(tmp_path))
    monkeypatch.delenv("COURSEKIT_SHAKESPEARE", raising=False)
    return tmp_path


@pytest.mark.skipif(not SHARED_SHAKESPEARE.exists(), reason="no shared copy of the text")
def test_shakespeare_from_a_verified_local_copy(cache):
    shutil.copy(SHARED_SHAKESPEARE, cache / "tinyshakespeare.txt")
    text = D.load_shakespeare()
    assert len(text) == 1_115_394 and text.startswith("First Citizen")


def test_shakespeare_missing_says_how_to_get_it(cache):
    with pytest.raises(shakespeare.DataError, match="opt-in data set.*download=True"):
        D.load_shakespeare()


def test_shakespeare_corrupt_file_is_refused(cache):
    bad = cache / "tinyshakespeare.txt"
    bad.write_text("To be or not to be")
    with pytest.raises(shakespeare.DataError, match="corrupt.*Delete it"):
        D.load_shakespeare()
    assert bad.read_text() == "To be or not to be"  # never changed


def test_shakespeare_offline_download_fails_clearly(cache, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(shakespeare.DataError, match="are you offline"):
        D.load_shakespeare(download=True)
    assert list(Path(cache).iterdir()) == []  # no partial file left behind


def test_shakespeare_tampered_download_is_removed(cache, monkeypatch):
    import io
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"x" * 1000))
    with pytest.raises(shakespeare.DataError, match="corrupt"):
        D.load_shakespeare(download=True)
    assert list(Path(cache).iterdir()) == []
