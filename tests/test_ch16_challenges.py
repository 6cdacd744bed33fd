"""Chapter 16: the lesson's inline tf-idf and int8 equal coursekit's BM25 and quantize_rows in
their limits; BM25 on hand-made documents; retrieval, the reader's batches and its fine-tune;
quantisation, pruning and distillation; the data-parallel script (one process against two
under torchrun); the bias measures and the counterfactual swap; the trade-off explorer;
the released stubs fail (answer key: test_check_contract.py)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from nbtools import exec_answer_cells, exec_tagged_cells, notebook

import coursekit as ck
from coursekit import compress as CP
from coursekit import retrieval as R
from coursekit.checks import ch16
from coursekit.checks.assertions import CheckFailure
from coursekit.data import StoryWorld, story_corpus
from coursekit.data import bias as B
from coursekit.data.stories import NAMES_F, NAMES_M, PROFESSIONS, TOWNS
from coursekit.lm import LMData, LMRun, lm_loss
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.train import History


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "16"))
    torch.set_num_threads(before)
    return ns


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny GPT on the story alphabet, as an LMRun, and some validation ids."""
    data = LMData.from_text(story_corpus(60, seed=0))
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=128, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(0)
    run = LMRun(GPT(cfg).eval(), History(), cfg, tokenizer=data.tokenizer)
    return run, data


# --- the lesson's inline code equals the package ----------------------------------------------

def test_lesson_tfidf_is_bm25_without_saturation_or_length(lesson):
    g = torch.Generator().manual_seed(0)
    vocab = ["a", "b", "c", "d", "e"]
    lengths = torch.randint(1, 9, (7,), generator=g).tolist()
    docs = [[vocab[i] for i in torch.randint(0, 5, (n,), generator=g)] for n in lengths]
    for query in (["a"], ["b", "c", "b"], ["e", "z"]):
        torch.testing.assert_close(lesson["tfidf_scores"](query, docs), R.bm25_scores(query, docs, k1=1e9, b=0.0))


def test_lesson_int8_is_quantize_rows_with_one_row(lesson):
    w = torch.randn(12, 7, generator=torch.Generator().manual_seed(1))
    q, scale = lesson["int8_tensor"](w)
    q_pkg, s_pkg = CP.quantize_rows(w.reshape(1, -1), 8)
    assert q.dtype == torch.int8 and torch.equal(q.reshape(1, -1), q_pkg)
    torch.testing.assert_close(scale.reshape(1, 1), s_pkg)


# --- BM25 ---------------------------------------------------------------------------------------

def test_bm25_on_a_hand_computed_case():
    docs = [["x", "y"], ["y", "y", "z", "z"]]
    s = R.bm25_scores(["x", "y"], docs, k1=1.0, b=0.5)
    idf_x, idf_y = math.log(1 + 1.5 / 1.5), math.log(1 + 0.5 / 2.5)
    norm0, norm1 = 1 - 0.5 + 0.5 * 2 / 3, 1 - 0.5 + 0.5 * 4 / 3
    expected0 = idf_x * 2 / (1 + norm0) + idf_y * 2 / (1 + norm0)
    expected1 = idf_y * 2 * 2 / (2 + norm1)
    torch.testing.assert_close(s, torch.tensor([expected0, expected1], dtype=torch.float64))
    # k1 = 0: presence only; a repeated query term counts once; unknown terms add nothing
    torch.testing.assert_close(R.bm25_scores(["y"], docs, k1=0.0, b=0.75), torch.full((2,), idf_y, dtype=torch.float64))
    torch.testing.assert_close(R.bm25_scores(["y", "y", "q"], docs), R.bm25_scores(["y"], docs))


def test_bm25_store_finds_the_fact_sentence_and_refuses_bad_input():
    world = StoryWorld(seed=1)
    store = R.BM25(R.sentence_store(world, 120, seed=0))
    for q, a, town in R.fact_questions(world)[:3] + R.fact_questions(world)[12:15]:
        best = store.retrieve(q, 1)[0]
        assert town in best and a in best, (q, best)
    hits = store.search("Ashford is known for", k=3)
    assert len(hits) == 3 and hits[0][1] >= hits[1][1] >= hits[2][1]
    with pytest.raises(ValueError, match="non-empty"):
        R.BM25([])
    with pytest.raises(ValueError, match="k1"):
        R.bm25_scores(["a"], [["a"]], k1=1.0, b=2.0)
    with pytest.raises(ValueError, match="at least 1"):
        store.search("x", k=0)
    assert R.tokenize("Ashford, is KNOWN for!") == ["ashford", "is", "known", "for"]
    assert R.split_sentences("A b. C d! E?") == ["A b.", "C d!", "E?"]


# --- the reader --------------------------------------------------------------------------------

def test_reading_examples_hold_their_answer_and_fit_the_context():
    ex = R.reading_examples(range(100, 110), per_world=5)
    assert len(ex) > 30
    for prompt, answer in ex:
        assert answer.startswith(" ") and answer.endswith(".") and answer[1:-1] in prompt
        assert len(prompt) + len(answer) <= 129
    assert len(R.fact_questions(StoryWorld(3))) == 2 * len(TOWNS)


def test_answer_batch_puts_the_loss_on_the_answer_only(tiny):
    run, _ = tiny
    x, y = R.answer_batch(run.tokenizer, [("Ashford is known for", " its bells."), ("In Oakmere", " a pier.")])
    assert x.shape == y.shape == (2, len("Ashford is known for its bells.") - 1)
    kept = y[0][y[0] != -100]
    assert run.tokenizer.decode(kept) == " its bells."
    assert run.tokenizer.decode(y[1][y[1] != -100]) == " a pier."
    assert (y[1, len("In Oakmere a pier.") - 1:] == -100).all()


def test_finetune_reader_copies_and_keeps_the_random_state(tiny):
    run, _ = tiny
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    state = torch.get_rng_state()
    ex = R.reading_examples(range(200, 205), per_world=4)
    reader = R.finetune_reader(run, ex, 3, batch_size=4, progress=False)
    again = R.finetune_reader(run, ex, 3, batch_size=4, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())
    assert len(reader.history["loss"]) == 3 and not reader.model.training
    assert all(torch.equal(a, b) for a, b in zip(reader.model.parameters(), again.model.parameters()))
    with pytest.raises(ValueError, match="no examples"):
        R.finetune_reader(run, [], 1, progress=False)


def test_evaluate_facts_shapes_and_a_wrong_passage(tiny):
    run, _ = tiny
    world = StoryWorld(seed=2)
    store = R.BM25(R.sentence_store(world, 80, seed=0))
    closed = R.evaluate_facts(run, world, max_new_tokens=4)
    rag = R.evaluate_facts(run, world, store, max_new_tokens=4)
    wrong = R.evaluate_facts(run, world, store, passages="wrong", max_new_tokens=4)
    assert closed["n"] == rag["n"] == 24 and math.isnan(closed["retrieval_hit"])
    assert rag["retrieval_hit"] > 0.9 and wrong["retrieval_hit"] == 0.0 and 0 <= wrong["copied"] <= 1
    assert rag["prompts"][0].endswith(R.fact_questions(world)[0][0])
    conf = R.answer_confidence(run, closed["prompts"][:3], n_chars=2)
    assert conf.shape == (3,) and ((conf > 0) & (conf <= 1)).all()
    with pytest.raises(ValueError, match="passages"):
        R.evaluate_facts(run, world, store, passages="best")


# --- compression ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantize_rows_rounds_within_half_a_step(bits):
    w = torch.randn(9, 20, generator=torch.Generator().manual_seed(bits)) * torch.linspace(0.01, 3, 9)[:, None]
    w[4] = 0
    q, scale = CP.quantize_rows(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int8 and scale.shape == (9, 1) and q.abs().max() <= qmax and scale[4] == 1
    assert ((CP.dequantize_rows(q, scale) - w).abs() <= scale / 2 + 1e-6).all()
    assert (q.abs().amax(1)[torch.arange(9) != 4] == qmax).all()         # every row uses its full range
    with pytest.raises(ValueError, match="bits"):
        CP.quantize_rows(w, 9)
    with pytest.raises(ValueError, match="matrix"):
        CP.quantize_rows(w[0], 8)


def test_compressed_copies_leave_the_model_alone_and_stay_close(tiny):
    run, data = tiny
    model = run.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = data.val[:40][None]
    with torch.no_grad():
        ref = model(x)[0]
        w8 = CP.quantize_weights(model)
        dyn = CP.dynamic_int8(model)
        assert isinstance(w8.blocks[0].mlp.fc, CP.Int8Linear)
        torch.testing.assert_close(w8(x)[0], ref, atol=0.05, rtol=0.05)
        torch.testing.assert_close(dyn(x)[0], ref, atol=0.05, rtol=0.05)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert CP.model_bytes(w8) < 0.6 * CP.model_bytes(model) and CP.model_bytes(dyn) < 0.6 * CP.model_bytes(model)
    lin = model.blocks[0].mlp.fc
    q, s = CP.quantize_rows(lin.weight, 8)
    torch.testing.assert_close(CP.Int8Linear(lin)(x.float().new_ones(2, lin.in_features)),
                               torch.nn.functional.linear(torch.ones(2, lin.in_features), q.float() * s, lin.bias))


def test_magnitude_pruning_zeroes_exactly_the_smallest():
    w = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    out = CP.magnitude_prune(w, 0.25)
    zeroed = out == 0
    assert int(zeroed.sum()) == 15 and w.abs()[zeroed].max() < w.abs()[~zeroed].min()
    assert torch.equal(out[~zeroed], w[~zeroed]) and not (w == 0).any()
    assert torch.equal(CP.magnitude_prune(w, 0.0), w) and (CP.magnitude_prune(w, 1.0) == 0).all()
    with pytest.raises(ValueError, match="share"):
        CP.magnitude_prune(w, 1.5)


def test_prune_model_prunes_each_block_matrix(tiny):
    run, _ = tiny
    pruned = CP.prune_model(run.model, 0.5)
    for _, _, lin in CP._block_linears(pruned):
        assert int((lin.weight == 0).sum()) == round(0.5 * lin.weight.numel())
    assert not (run.model.blocks[0].mlp.fc.weight == 0).any()


def test_distillation_loss_against_a_written_kl():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    for T in (1.0, 2.0, 0.5):
        p = torch.softmax(t / T, -1)
        kl = (p * (p.log() - torch.log_softmax(s / T, -1))).sum(-1).mean()
        torch.testing.assert_close(CP.distillation_loss(s, t, T), T * T * kl)
    assert CP.distillation_loss(t, t, 3.0).abs() < 1e-6
    with pytest.raises(ValueError, match="positive"):
        CP.distillation_loss(s, t, 0.0)


def test_distill_keeps_the_contract(tiny):
    run, data = tiny
    state = torch.get_rng_state()
    cfg = GPTConfig(vocab_size=run.config.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)
    student = CP.distill(run.model, cfg, data, 3, progress=False)
    assert torch.equal(state, torch.get_rng_state()) and len(student.history["loss"]) == 3
    assert isinstance(student, LMRun) and not student.model.training
    with pytest.raises(ValueError, match="vocabulary"):
        CP.distill(run.model, GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=1, n_embd=8), data, 1,
                   progress=False)
    m = CP.measure(student.model, data.val[:200], n_tokens=3)
    assert set(m) == {"bytes", "ms_per_token", "val_loss"} and m["val_loss"] == pytest.approx(
        lm_loss(student.model, data.val[:200]))
    x = torch.ones(2 ** 23, dtype=torch.uint8)                   # 8 MB more, touched
    assert CP.peak_memory_mb() > 8 and x.sum() == 2 ** 23


# --- data parallel -----------------------------------------------------------------------------

def test_ddp_one_process_matches_two_under_torchrun(tmp_path):
    from coursekit import ddp_train
    config = {"steps": 3, "batch": 4, "n_stories": 40}
    r1 = ddp_train.main([f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
                        + ["--out", str(tmp_path / "one.json")])           # in this process: world of 1
    assert r1["world_size"] == 1 and len(r1["losses"]) == 3
    assert json.loads((tmp_path / "one.json").read_text())["losses"] == r1["losses"]
    # Three torchrun runs, all of which must pass: before the workers skipped the interpreter's
    # teardown, 2 runs in 70 aborted there (gloo, torch 2.13 on CPU).
    for _ in range(3):
        r2 = ddp_train.launch(2, timeout=240, **config)
        assert r2["world_size"] == 2 and r2["global_batch"] == 4 and r2["wall_seconds"] > 0
        assert max(abs(a - b) for a, b in zip(r1["losses"], r2["losses"])) < 1e-4
    with pytest.raises(ValueError, match="divide evenly"):
        _odd_batch(ddp_train)


def test_ddp_launch_refuses_bad_arguments_and_reports_a_failed_run():
    from coursekit import ddp_train
    with pytest.raises(ValueError, match="whole number of processes"):
        ddp_train.launch(0)
    with pytest.raises(TypeError, match="unknown DDPConfig field.*'stepz'"):
        ddp_train.launch(1, stepz=3)
    with pytest.raises(RuntimeError, match=r"(?s)1-process run failed.*divide evenly"):
        ddp_train.launch(1, steps=1, batch=0, n_stories=20)
    before = _ddp_workers()
    with pytest.raises(RuntimeError, match="longer than 1.5 s and was stopped"):
        ddp_train.launch(2, timeout=1.5, steps=10_000)
    assert _ddp_workers() <= before                                # torchrun's workers went with it


def _ddp_workers() -> int:
    import psutil
    return sum("coursekit.ddp_train" in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))


def _odd_batch(ddp_train):
    """A global batch of 3 over a (pretended) world of 2 processes."""
    import os
    old = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = "2"
    try:
        ddp_train.train(ddp_train.DDPConfig(steps=1, batch=3, n_stories=20))
    finally:
        if old is None:
            del os.environ["WORLD_SIZE"]
        else:
            os.environ["WORLD_SIZE"] = old


# --- bias -----------------------------------------------------------------------------------------

def test_swap_gender_is_its_own_inverse_and_balances_the_data():
    world = StoryWorld(bias=0.8)
    stories = world.stories(400, seed=1)
    for s in stories[:20]:
        assert B.swap_gender(B.swap_gender(s.text)) == s.text
    swapped = B.swap_gender("Anna lost her key. She asked Tom for help. He smiled.")
    assert swapped == "Tom lost his key. He asked Anna for help. She smiled."
    assert 0.72 < B.stereotype_share(stories) < 0.88
    aug = B.counterfactual_stories(stories)
    assert len(aug) == 800 and B.stereotype_share(aug) == 0.5
    assert all(B.pronoun_of_name(s.name) == s.pronoun for s in aug)
    assert B.stereotype_share(StoryWorld(bias=1.0).stories(100)) == 1.0
    assert B.counterfactual_corpus(stories[:2]).count("\n\n") == 3
    with pytest.raises(ValueError, match="no stories"):
        B.stereotype_share([])


def test_bias_measures_on_a_tiny_model(tiny):
    run, _ = tiny
    assert B.opening_prompt("engineer") == "Once upon a time, an engineer named"
    with pytest.raises(ValueError, match="unknown profession"):
        B.opening_prompt("wizard")
    p = B.stereotype_probability(run, "nurse")
    assert 0.0 < p < 1.0
    r = B.sampled_stereotype_share(run, n_per_job=2)
    assert set(r["per_job"]) == set(PROFESSIONS) and r["n"] + r["unreadable"] == 2 * len(PROFESSIONS)
    assert B.pronoun_of_name(NAMES_F[0]) == "she" and B.pronoun_of_name(NAMES_M[0]) == "he"
    assert B.pronoun_of_name("Ashford") is None


# --- the widget -----------------------------------------------------------------------------------

def test_tradeoff_explorer_redraws_and_measures(tiny):
    run, data = tiny
    w = ck.widgets.tradeoff_explorer(run, data.val[:600], n_tokens=2)
    assert w.error == "" and w.n_draws == 1 and w.png.startswith(b"\x89PNG")
    first = dict(w.current)
    assert first["bytes"] < w.base["bytes"]                       # 8 bits against float32
    before = w.png
    w.set(share=0.5, bits=2)
    assert w.n_draws == 2 and w.png != before and w.current["bytes"] < first["bytes"]
    stored = [m.q for m in w.model.blocks.modules() if isinstance(m, CP.Int8Linear)]
    assert len(stored) == 4 * run.config.n_layer                     # qkv, proj, fc, mlp proj per block
    assert sum(int((q == 0).sum()) for q in stored) >= 0.5 * sum(q.numel() for q in stored)
    with pytest.raises(TypeError, match="GPT"):
        ck.widgets.tradeoff_explorer(torch.nn.Linear(2, 2), data.val[:600])
    with pytest.raises(ValueError, match="val_ids"):
        ck.widgets.tradeoff_explorer(run, data.val[:10])


# --- the checks and the notebooks ------------------------------------------------------------

EXERCISES = ["bm25_scores", "quantize_rows", "magnitude_prune", "distillation_loss"]


def test_check_references_agree_with_the_package():
    g = torch.Generator().manual_seed(0)
    docs = [["a", "b", "a"], ["b", "c"], ["c", "c", "c", "d"]]
    for k1, b in ((1.5, 0.75), (0.0, 0.3), (2.0, 0.0)):
        torch.testing.assert_close(ch16._bm25(["a", "c", "c"], docs, k1, b),
                                   R.bm25_scores(["a", "c", "c"], docs, k1, b))
    w = torch.randn(5, 8, generator=g)
    for bits in (8, 3):
        q, s = ch16._quant(w, bits)
        q_pkg, s_pkg = CP.quantize_rows(w, bits)
        assert torch.equal(q.to(torch.int8), q_pkg)
        torch.testing.assert_close(s.float(), s_pkg)
    torch.testing.assert_close(ch16._prune(w, 0.4), CP.magnitude_prune(w, 0.4))
    s_, t_ = torch.randn(2, 4, 6, generator=g), torch.randn(2, 4, 6, generator=g)
    torch.testing.assert_close(ch16._kd(s_, t_, 2.0).float(), CP.distillation_loss(s_, t_, 2.0))


def _answer_cells(folder: str) -> dict:
    return exec_answer_cells(folder, "16", {"torch": torch, "math": math})


def test_the_released_exercises_fail_every_check_until_written():
    ns = _answer_cells("exercises")
    for name in EXERCISES:
        with pytest.raises(CheckFailure, match="not written yet"):
            getattr(ch16, f"check_{name}")(ns[name])


def test_the_solutions_pass_every_check(capsys):
    ns = _answer_cells("solutions")
    for name in EXERCISES:
        getattr(ch16, f"check_{name}")(ns[name], seed=11)
        assert capsys.readouterr().out.startswith(f"PASSED check_{name}")
