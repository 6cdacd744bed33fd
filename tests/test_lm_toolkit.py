"""The language-model toolkit: decoding rules, the KV cache, train_lm, checkpoints, tokenizers."""
import math

import pytest
import torch
import torch.nn.functional as F

from coursekit import sampling
from coursekit.data import CharTokenizer, Tokenizer, story_corpus, tokenizer_from_state
from coursekit.lm import LMData, LMTrainConfig, load_lm, lm_loss, save_lm, train_lm
from coursekit.models.gpt import GPT, GPTConfig

TINY = dict(block_size=16, n_layer=2, n_head=2, n_embd=32)


def _model(**changes) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=13, **{**TINY, **changes})).eval()


# --- decoding rules, each against a brute-force oracle -----------------------------------------

def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(0))
    out = sampling.top_k_filter(logits, 7)
    kept = torch.isfinite(out)
    assert kept.sum(1).tolist() == [7] * 5
    for row, keep in zip(logits, kept):
        assert set(torch.nonzero(keep).flatten().tolist()) == set(row.topk(7).indices.tolist())
    assert torch.equal(out[kept], logits[kept])


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.999, 1.0])
def test_top_p_keeps_the_smallest_set_reaching_p(p):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 30, generator=g) * 2
    out = sampling.top_p_filter(logits, p)
    for row, filtered in zip(logits, out):
        probs = F.softmax(row, -1)
        order = probs.argsort(descending=True).tolist()
        # oracle: walk down the sorted probabilities until their sum reaches p
        nucleus, mass = set(), 0.0
        for i in order:
            nucleus.add(i)
            mass += probs[i].item()
            if mass >= p:
                break
        assert set(torch.nonzero(torch.isfinite(filtered)).flatten().tolist()) == nucleus


def test_repetition_penalty_lowers_seen_tokens_only():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    out = sampling.apply_repetition_penalty(logits, torch.tensor([[0, 1, 1]]), 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0]]
    with pytest.raises(ValueError, match=">= 1"):
        sampling.apply_repetition_penalty(logits, torch.tensor([[0]]), 0.5)


def test_next_token_greedy_and_temperature_limits():
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 4.9]])
    assert sampling.next_token(logits, temperature=0).flatten().tolist() == [1, 0]
    # a very low temperature behaves like greedy; a draw follows the softmax on average
    g = torch.Generator().manual_seed(0)
    assert sampling.next_token(logits, 1e-4, generator=g).flatten().tolist() == [1, 0]
    draws = torch.cat([sampling.next_token(logits[:1], 1.0, generator=g) for _ in range(4000)])
    freq = torch.bincount(draws.flatten(), minlength=3).float() / 4000
    torch.testing.assert_close(freq, F.softmax(logits[0], -1), atol=0.03, rtol=0)
    with pytest.raises(ValueError, match=">= 0"):
        sampling.next_token(logits, -1.0)


# --- the KV cache --------------------------------------------------------------------------------

@pytest.mark.parametrize("pos_emb", ["learned", "sinusoidal", "none"])
@pytest.mark.parametrize("fused", [True, False])
def test_cached_logits_equal_a_full_forward(pos_emb, fused):
    model = _model(pos_emb=pos_emb, fused_attention=fused)
    idx = torch.randint(0, 13, (3, 16), generator=torch.Generator().manual_seed(2))
    full, _ = model(idx)
    cache = model.new_cache()
    parts = [model(idx[:, :7], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(7, 16)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 16
    with pytest.raises(ValueError, match="block_size"):
        model(idx[:, :1], cache=cache)


@pytest.mark.parametrize("decoding", [dict(temperature=0), dict(temperature=1.0),
                                      dict(temperature=0.8, top_k=4), dict(temperature=1.2, top_p=0.7),
                                      dict(temperature=1.0, repetition_penalty=1.5)])
def test_generation_with_and_without_cache_gives_the_same_tokens(decoding):
    model = _model()
    prompt = torch.randint(0, 13, (2, 3), generator=torch.Generator().manual_seed(3))
    # 40 new tokens: past block_size = 16, so the window slides too
    a = model.generate(prompt, 40, generator=torch.Generator().manual_seed(4), **decoding)
    b = model.generate(prompt, 40, generator=torch.Generator().manual_seed(4), use_cache=False, **decoding)
    assert a.shape == (2, 43) and torch.equal(a[:, :3], prompt)
    assert torch.equal(a, b)


def test_uncached_generation_equals_a_hand_written_loop():
    """The reference loop of lesson 06: crop to block_size, last logits, softmax, multinomial."""
    model = _model()
    prompt = torch.tensor([[1, 2, 3]])
    out = model.generate(prompt, 25, temperature=0.9, top_k=5, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    idx = prompt
    with torch.no_grad():
        for _ in range(25):
            logits = model(idx[:, -16:])[0][:, -1] / 0.9
            kth = logits.topk(5).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
            idx = torch.cat([idx, torch.multinomial(F.softmax(logits, -1), 1, generator=g)], 1)
    assert torch.equal(out, idx)


def test_a_model_with_foreign_blocks_generates_without_the_cache():
    """Lesson 06's exercise puts the learner's own blocks into a GPT: no cache for those."""
    model = _model()
    reference = model.generate(torch.tensor([[1, 2]]), 20, temperature=0)

    class Plain(torch.nn.Module):      # a block that knows nothing of caches
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    model.blocks = torch.nn.ModuleList(Plain(b) for b in model.blocks)
    assert not model.supports_cache
    assert torch.equal(model.generate(torch.tensor([[1, 2]]), 20, temperature=0), reference)


def test_generate_leaves_train_mode_and_rejects_bad_prompts():
    model = _model().train()
    model.generate(torch.tensor([[1]]), 3, temperature=0)
    assert model.training
    with pytest.raises(ValueError, match=r"\(B, T0\)"):
        model.generate(torch.tensor([1, 2]), 3)


# --- tokenizers ----------------------------------------------------------------------------------

def test_char_tokenizer_state_round_trip():
    tok = CharTokenizer("héllo wörld 🙂")
    assert isinstance(tok, Tokenizer)
    back = tokenizer_from_state(tok.state())
    assert back.chars == tok.chars and back.decode(back.encode("wörld 🙂")) == "wörld 🙂"
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        tokenizer_from_state({"kind": "nope"})


# --- train_lm, lm_loss, checkpoints --------------------------------------------------------------

@pytest.fixture(scope="module")
def data():
    return LMData.from_text(story_corpus(60, seed=0))


def test_train_lm_learns_and_leaves_global_randomness_alone(data):
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    run = train_lm(cfg, data, 60, seed=1, progress=False,
                   train_config=LMTrainConfig(batch_size=8, eval_every=20))
    assert torch.equal(torch.get_rng_state(), before)
    losses = run.history["val_loss"]
    assert losses[-1] < losses[0] - 0.5 and losses[0] == pytest.approx(math.log(cfg.vocab_size), abs=0.3)
    assert not run.model.training and run.tokenizer is data.tokenizer
    again = train_lm(cfg, data, 60, seed=1, progress=False,
                     train_config=LMTrainConfig(batch_size=8, eval_every=20))
    assert again.history["loss"] == run.history["loss"]          # same seed, same run
    other = train_lm(cfg, data, 60, seed=2, progress=False,
                     train_config=LMTrainConfig(batch_size=8, eval_every=20))
    assert other.history["loss"] != run.history["loss"]


def test_train_lm_rejects_a_mismatched_vocabulary(data):
    with pytest.raises(ValueError, match="vocab_size"):
        train_lm(GPTConfig(vocab_size=7, **TINY), data, 1, progress=False)


def test_lm_loss_counts_every_prediction_once(data):
    model = _model()
    ids = torch.randint(0, 13, (16 * 5 + 1,), generator=torch.Generator().manual_seed(0))
    x, y = ids[:-1].view(5, 16), ids[1:].view(5, 16)
    expected = F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten()).item()
    assert lm_loss(model, ids) == pytest.approx(expected, rel=1e-5)


def test_checkpoint_round_trip_loads_weights_only(data, tmp_path):
    cfg = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32)
    run = train_lm(cfg, data, 5, seed=0, progress=False)
    path = save_lm(run, tmp_path / "m.pt")
    back = load_lm(path)
    assert back.config == run.config and back.tokenizer.state() == run.tokenizer.state()
    for (k, a), (_, b) in zip(run.model.state_dict().items(), back.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert back.history.records == run.history.records
    text = back.sample("Once", 20, temperature=0)
    assert text.startswith("Once") and len(text) == 24 and text == run.sample("Once", 20, temperature=0)
    torch.save({"format": "something else"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a coursekit language-model checkpoint"):
        load_lm(tmp_path / "bad.pt")
