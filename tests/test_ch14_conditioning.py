"""Chapter 14: the lesson's inline guidance and sampler give the same images as
coursekit.models.cond_diffusion under the same noise; the conditional U-Net's own
properties (null class, a zero class table is chapter 07's U-Net, w = 0 / w = 1); condition
dropout and training; the zoo's digit-cfg round trip; the prompting helpers on hand-made
texts; the guidance explorer widget; the released stubs fail (answer key: test_check_contract.py).
The checks' right and wrong answers live in tests/answers/ch14.py (test_check_contract.py)."""
from __future__ import annotations

import pytest
import torch
from nbtools import exec_answer_cells, exec_tagged_cells, notebook

import coursekit as ck
from coursekit import zoo
from coursekit.checks import ch14
from coursekit.checks.assertions import CheckFailure
from coursekit.data import CharTokenizer, StoryWorld
from coursekit.evaluate import within_class_diversity
from coursekit.models import cond_diffusion as CD
from coursekit.models.diffusion import DiffusionRun, NoiseSchedule, ddim_step, ddim_timesteps
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.models.unet import UNet
from coursekit.prompting import (StoryRequest, complete, compliance_rates, fact_correct, fact_prompt,
                                 field_compliance, request_prompt, story_requests)
from coursekit.train import History, Run


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny CondUNet with its schedule, as a Run (what the zoo returns)."""
    cfg = CD.CondDiffusionConfig.preset("tiny")
    torch.manual_seed(0)
    model = CD.CondUNet(cfg.unet, cfg.n_classes).eval()
    with torch.no_grad():                                   # make the labels matter
        model.class_emb.weight.mul_(5)
    run = Run(model, History(), cfg)
    run.schedule = NoiseSchedule.from_config(cfg)
    return run


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "14"))
    torch.set_num_threads(before)
    return ns


# --- the lesson's inline code equals the package ---------------------------------------------

@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_lesson_sampler_matches_guided_sample(lesson, tiny, w):
    labels = torch.tensor([0, 3, 3, 9, 5])
    noise = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = lesson["sample_with_guidance"](tiny.model, tiny.schedule, labels, w, n_steps=7, noise=noise)
    theirs = CD.guided_sample(tiny.model, tiny.schedule, labels, w=w, n_steps=7, noise=noise)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)   # one batched call vs two: rounding only


def test_lesson_guided_eps_matches_the_package(lesson):
    g = torch.Generator().manual_seed(0)
    u, c = torch.randn(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    for w in (0.0, 1.0, 3.0, -1.0):
        assert torch.equal(lesson["guided_eps"](u, c, w), CD.guided_eps(u, c, w))


# --- the model's own properties ------------------------------------------------------------------

def test_a_zero_class_table_is_chapter_07s_unet():
    cfg = CD.CondDiffusionConfig.preset("tiny")
    torch.manual_seed(0)
    plain = UNet(cfg.unet).eval()
    cond = CD.CondUNet(cfg.unet, cfg.n_classes).eval()
    missing = cond.load_state_dict(plain.state_dict(), strict=False)
    assert missing.missing_keys == ["class_emb.weight"] and not missing.unexpected_keys
    with torch.no_grad():
        cond.class_emb.weight.zero_()
        xt, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 30, 49])
        torch.testing.assert_close(cond(xt, t, torch.tensor([1, 2, 3, 10])), plain(xt, t))


def test_labels_matter_and_none_is_the_null_class(tiny):
    model = tiny.model
    xt, t = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.full((3,), 20)
    with torch.no_grad():
        a, b = model(xt, t, torch.tensor([1, 1, 1])), model(xt, t, torch.tensor([7, 7, 7]))
        assert not torch.allclose(a, b)
        torch.testing.assert_close(model(xt, t, None), model(xt, t, torch.full((3,), 10)))
        torch.testing.assert_close(model(xt, 20, 1), a)                   # ints broadcast
    with pytest.raises(ValueError, match="labels must be in"):
        model(xt, t, torch.tensor([0, 11, 2]))


def _plain_ddim(model, schedule, label, noise, n_steps):
    """Chapter 07's DDIM with a fixed label: what w = 0 (null) and w = 1 (the label) must give."""
    x = noise.clone()
    ts = ddim_timesteps(schedule.n_timesteps, n_steps)
    with torch.no_grad():
        for t, t_prev in zip(ts, ts[1:] + [-1]):
            x = ddim_step(model(x, torch.full((len(x),), t), label), t, t_prev, x, schedule.alphas_cumprod)
    return x


def test_w0_is_unconditional_and_w1_is_conditional(tiny):
    labels = torch.tensor([2, 4, 6, 8])
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    w0 = CD.guided_sample(tiny.model, tiny.schedule, labels, w=0.0, n_steps=5, noise=noise)
    w1 = CD.guided_sample(tiny.model, tiny.schedule, labels, w=1.0, n_steps=5, noise=noise)
    torch.testing.assert_close(w0, _plain_ddim(tiny.model, tiny.schedule, torch.full((4,), 10), noise, 5),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w1, _plain_ddim(tiny.model, tiny.schedule, labels, noise, 5), atol=1e-5, rtol=1e-5)
    # the unconditional samples do not depend on the request
    other = CD.guided_sample(tiny.model, tiny.schedule, torch.tensor([0, 0, 0, 0]), w=0.0, n_steps=5, noise=noise)
    torch.testing.assert_close(w0, other, atol=1e-5, rtol=1e-5)
    assert tiny.model.training is False


def test_drop_condition_is_independent_and_leaves_y_alone():
    y = torch.randint(0, 10, (50_000,), generator=torch.Generator().manual_seed(0))
    before = y.clone()
    out = CD.drop_condition(y, 0.2, 10, torch.Generator().manual_seed(1))
    assert torch.equal(y, before) and out.dtype == torch.long
    assert abs((out == 10).float().mean().item() - 0.2) < 0.01
    assert torch.equal(out[out != 10], y[out != 10])
    same = CD.drop_condition(y, 0.2, 10, torch.Generator().manual_seed(1))
    assert torch.equal(out, same)
    assert torch.equal(CD.drop_condition(y, 0.0, 10), y) and (CD.drop_condition(y, 1.0, 10) == 10).all()


def test_training_keeps_the_contract_and_the_global_random_state():
    x0 = torch.rand(40, 1, 8, 8) * 2 - 1
    y = torch.arange(40) % 10
    state = torch.get_rng_state()
    run = CD.train_cond_diffusion(CD.CondDiffusionConfig.preset("tiny"), (x0, y), 3, progress=False, seed=4)
    assert torch.equal(state, torch.get_rng_state())
    assert isinstance(run, DiffusionRun) and isinstance(run.ema_model, CD.CondUNet) and len(run.history["loss"]) == 3
    again = CD.train_cond_diffusion(CD.CondDiffusionConfig.preset("tiny"), (x0, y), 3, progress=False, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(run.model.parameters(), again.model.parameters()))
    with pytest.raises(ValueError, match="one label"):
        CD.train_cond_diffusion(CD.CondDiffusionConfig.preset("tiny"), (x0, y + 5), 1, progress=False)


def test_the_zoo_builds_and_reloads_digit_cfg(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("COURSEKIT_FAST", "1")
    run = zoo.load("digit-cfg", progress=False)
    again = zoo.load("digit-cfg", progress=False)
    assert isinstance(again.model, CD.CondUNet) and not again.model.training
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), again.model.state_dict().values()))
    x = CD.guided_sample(again.model, again.schedule, torch.tensor([1, 2]), w=2.0, n_steps=3)
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()
    # chapter 07's unconditional model is untouched by this chapter
    assert "digit-diffusion" in zoo.available() and "digit-cfg" in zoo.available()


def test_within_class_diversity_on_hand_made_images():
    x = torch.zeros(4, 1, 2, 2)
    x[1, 0, 0, 0] = 1.0                                   # class 0: distance 1
    x[3] = 0.5                                            # class 1: distance sqrt(4 * 0.25) = 1
    assert within_class_diversity(x, torch.tensor([0, 0, 1, 1])) == pytest.approx(1.0)
    assert within_class_diversity(torch.zeros(4, 1, 2, 2), torch.tensor([0, 0, 1, 1])) == 0.0
    assert torch.isnan(torch.tensor(within_class_diversity(x[:2], torch.tensor([0, 1]))))


# --- the prompting helpers ------------------------------------------------------------------------

def test_field_compliance_on_hand_made_stories():
    req = StoryRequest("Tom", "nurse", "Ashford")
    assert req.pronoun == "he" and not req.stereotyped and StoryRequest("Anna", "nurse", "Ashford").stereotyped
    good = "Ashford is known for its kites. One night, he lost his map. Tom thanked Anna."
    assert field_compliance(good, req) == {"name": True, "town": True, "pronoun": True, "all": True}
    drift = "Millbrook is known for its kites. One night, she lost her map. Tomas smiled."
    assert field_compliance(drift, req) == {"name": False, "town": False, "pronoun": False, "all": False}
    mixed = "Ashford and Millbrook. He lost her map. Tom!"
    assert field_compliance(mixed, req) == {"name": True, "town": False, "pronoun": False, "all": False}
    assert field_compliance("no pronoun at all in Ashford, Tom", req)["pronoun"] is False
    rates = compliance_rates([good, drift], [req, req])
    assert rates == {"name": 0.5, "town": 0.5, "pronoun": 0.5, "all": 0.5}


def test_prompts_are_built_as_documented():
    req = StoryRequest("Anna", "engineer", "Oakmere")
    assert request_prompt(req) == "Once upon a time, an engineer named Anna lived in Oakmere. "
    assert request_prompt(req, "header") == "Story about Anna, an engineer, in Oakmere. "
    world = StoryWorld()
    p = fact_prompt("Ashford", ["Millbrook"], world)
    assert p == f"Millbrook is known for {world.known_for['Millbrook']}. Ashford is known for"
    assert fact_prompt("Ashford", [], world, wording="everyone knows") == "Everyone knows that Ashford is known for"
    assert fact_prompt("Ashford", ["Oakmere"], world, "lines").split("\n")[1] == "Ashford is known for"
    assert fact_prompt("Ashford", [], world, "terse") == "Ashford,"
    assert fact_prompt("Ashford", ["Oakmere"], world, "terse") == f"Oakmere, {world.known_for['Oakmere']}. Ashford,"
    assert fact_correct(f" {world.known_for['Ashford']}. The", "Ashford", world)
    assert not fact_correct(" its nothing", "Ashford", world)
    reqs = story_requests(200, seed=1)
    assert reqs == story_requests(200, seed=1) and 0.3 < sum(r.stereotyped for r in reqs) / 200 < 0.7


def test_complete_batches_by_length_and_matches_one_by_one():
    tok = CharTokenizer("abc .\n")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=1, n_embd=8)).eval()
    run = Run(model, History(), None)
    run.tokenizer = tok
    prompts = ["ab", "abc", "ba", "c", "cab "]
    together = complete(run, prompts, 10, stop=None)
    alone = [complete(run, [p], 10, stop=None)[0] for p in prompts]
    assert together == alone and all(len(t) == 10 for t in together)
    sampled = complete(run, prompts, 10, temperature=1.0, seed=2, stop=None)
    assert sampled == complete(run, prompts, 10, temperature=1.0, seed=2, stop=None)
    assert all("\n" not in t for t in complete(run, prompts, 10, temperature=1.0, seed=2))


# --- the widget ----------------------------------------------------------------------------------

def test_guidance_explorer_draws_a_row_per_digit(tiny):
    w = ck.widgets.guidance_explorer(tiny, digits=[1, 7], n_per_row=3, n_steps=4)
    assert w.error == "" and w.n_draws == 1 and w.png.startswith(b"\x89PNG")
    assert w.samples.shape == (6, 1, 8, 8) and w.labels.tolist() == [1, 1, 1, 7, 7, 7]
    expected = CD.guided_sample(tiny.model, tiny.schedule, w.labels, w=2.0, n_steps=4, noise=w.noise)
    torch.testing.assert_close(w.samples, ((expected + 1) / 2).clamp(0, 1))
    before = w.png
    w.set(w=0.0)
    assert w.n_draws == 2 and w.png != before
    with torch.no_grad():
        hits = (w.classifier(w.samples).argmax(1) == w.labels).float()
    assert w.accuracy == pytest.approx(hits.mean().item()) and len(w.row_accuracy) == 2


def test_guidance_explorer_refuses_bad_arguments(tiny):
    with pytest.raises(ValueError, match="digits"):
        ck.widgets.guidance_explorer(tiny, digits=[3, 12])
    with pytest.raises(TypeError, match="digit-cfg"):
        ck.widgets.guidance_explorer(Run(torch.nn.Linear(2, 2), History(), None))


# --- the checks and the notebooks ------------------------------------------------------------

EXERCISES = ["guided_eps", "drop_condition", "guided_ddim_step"]


def test_check_references_agree_with_the_package(tiny):
    g = torch.Generator().manual_seed(0)
    u, c = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    for w in (0.0, 2.0):
        torch.testing.assert_close(ch14._guided(u, c, w), CD.guided_eps(u, c, w))
    xt = torch.randn(3, 1, 8, 8, generator=g)
    y = torch.tensor([1, 5, 9])
    abar = tiny.schedule.alphas_cumprod
    with torch.no_grad():
        for t, t_prev in ((40, 30), (3, -1)):
            ref = ch14._ddim_guided(tiny.model, xt, t, t_prev, y, 2.0, abar, 10)
            pkg = CD.guided_ddim_step(tiny.model, xt, t, t_prev, y, 2.0, abar, 10)
            torch.testing.assert_close(ref, pkg, atol=1e-5, rtol=1e-5)


def _answer_cells(folder: str) -> dict:
    return exec_answer_cells(folder, "14", {"torch": torch, "rearrange": __import__("einops").rearrange})


def test_the_released_exercises_fail_every_check_until_written():
    ns = _answer_cells("exercises")
    for name in EXERCISES:
        with pytest.raises(CheckFailure, match="not written yet"):
            getattr(ch14, f"check_{name}")(ns[name])


def test_the_family_keeps_the_model_contract():
    """What tests/test_model_contract.py asks of every family, for this one."""
    import inspect
    cfg = CD.CondDiffusionConfig.preset("digits", p_uncond=0.2)
    assert cfg.p_uncond == 0.2 and cfg.null_class == 10 and CD.PRESETS["digits"].p_uncond == 0.1
    with pytest.raises(KeyError, match="presets"):
        CD.CondDiffusionConfig.preset("no-such-preset")
    params = inspect.signature(CD.train_cond_diffusion).parameters
    assert list(params)[:3] == ["cfg", "data", "n_steps"]
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("device", "seed", "progress"))
