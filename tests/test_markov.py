"""coursekit.models.markov against brute-force counting oracles."""
import math
from collections import Counter

import pytest
import torch

from coursekit.models.markov import PRESETS, MarkovChain, MarkovConfig

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog.\n"


def brute_counts(text: str, k: int) -> Counter:
    """N(c, x) for every context length 0..k, by walking over the text once per length."""
    counts: Counter = Counter()
    for j in range(k + 1):
        for t in range(j, len(text)):
            counts[(text[t - j:t], text[t])] += 1
    return counts


def brute_prob(text: str, vocab: list[str], k: int, alpha: float, history: str, x: str) -> float:
    """p(x | history) straight from equation (1), no backoff."""
    c = history[max(0, len(history) - k):]
    counts = brute_counts(text, k)
    total = sum(n for (cc, _), n in counts.items() if cc == c)
    if total == 0:
        return 1 / len(vocab)
    return (counts[(c, x)] + alpha) / (total + alpha * len(vocab))


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_counts_match_brute_force(k):
    chain = MarkovChain(order=k).fit(TEXT)
    got = Counter({(c, x): n for c, d in chain.counts.items() for x, n in d.items()})
    assert got == brute_counts(TEXT, k)
    for c, d in chain.counts.items():
        assert chain.totals[c] == sum(d.values())


@pytest.mark.parametrize("k, alpha", [(0, 0.5), (1, 0.0), (2, 0.01), (3, 1.0)])
@pytest.mark.parametrize("history", ["", "t", "the c", "on the ", "zzz"])
def test_next_probs_match_equation_1(k, alpha, history):
    vocab = sorted(set(TEXT) | {"z"})
    chain = MarkovChain(order=k, alpha=alpha).fit(TEXT, vocab=vocab)
    probs = chain.next_probs(history)
    assert probs.shape == (len(vocab),) and probs.dtype == torch.float64
    ref = torch.tensor([brute_prob(TEXT, vocab, k, alpha, history, x) for x in vocab],
                       dtype=torch.float64)
    torch.testing.assert_close(probs, ref, atol=1e-12, rtol=0)
    assert abs(probs.sum().item() - 1) < 1e-12


def test_unseen_context_is_uniform_and_backoff_uses_longest_seen_suffix():
    plain = MarkovChain(order=3, alpha=0.1).fit(TEXT)
    assert torch.allclose(plain.next_probs("xyz"[:0] + "q t"),  # 'q' unseen -> context unseen
                          torch.full((plain.vocab_size,), 1 / plain.vocab_size, dtype=torch.float64))
    backoff = MarkovChain(order=3, alpha=0.1, backoff=True).fit(TEXT)
    assert backoff.context("dq t") == " t"          # "q t" unseen, " t" seen
    assert backoff.context(" th") == " th"          # seen: kept whole
    torch.testing.assert_close(backoff.next_probs("q t"), backoff.next_probs(" t"))


def test_transition_matrix_is_the_bigram_table():
    chain = MarkovChain(order=1, alpha=0.5).fit(TEXT)
    P = chain.transition_matrix()
    V = chain.vocab_size
    assert P.shape == (V, V)
    counts = torch.zeros(V, V, dtype=torch.float64)
    for a, b in zip(TEXT, TEXT[1:]):
        counts[chain.stoi[a], chain.stoi[b]] += 1
    ref = (counts + 0.5) / (counts.sum(1, keepdim=True) + 0.5 * V)
    torch.testing.assert_close(P, ref, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="order 1"):
        MarkovChain(order=2).fit(TEXT).transition_matrix()


@pytest.mark.parametrize("k", [0, 1, 3])
@pytest.mark.parametrize("backoff", [False, True])
def test_log_likelihood_is_sum_of_log_next_probs(k, backoff):
    chain = MarkovChain(order=k, alpha=0.05, backoff=backoff).fit(TEXT[:40], vocab=TEXT)
    held_out = "the dog and the cat."
    prompt = "on "
    ref = 0.0
    history = prompt
    for x in held_out:
        ref += math.log(chain.next_probs(history)[chain.stoi[x]].item())
        history += x
    assert chain.log_likelihood(held_out, prompt=prompt) == pytest.approx(ref, rel=1e-10)
    assert chain.perplexity(held_out, prompt=prompt) == pytest.approx(
        math.exp(-ref / len(held_out)), rel=1e-10)


def test_perplexity_bounds():
    vocab = sorted(set(TEXT))
    # A chain that has seen no context of length 5 guesses uniformly: perplexity V.
    blind = MarkovChain(order=5, alpha=1.0).fit("ca", vocab=vocab)
    assert blind.perplexity("the cat sat", prompt="xxxxxxxxx") == pytest.approx(len(vocab))
    # A deterministic text under a high-order, unsmoothed chain: perplexity 1.
    sure = MarkovChain(order=2, alpha=0.0).fit("abcabcabcabc")
    assert sure.perplexity("cabca", prompt="ab") == pytest.approx(1.0)
    # A character the chain has never seen after its context has probability 0 when alpha = 0.
    assert sure.log_likelihood("b", prompt="ab") == -math.inf
    assert sure.perplexity("b", prompt="ab") == math.inf


def test_held_out_perplexity_falls_then_rises_with_order():
    """The lesson's claim on the story corpus: more context helps, until contexts go unseen."""
    from coursekit.data import story_corpus
    text = story_corpus(n_stories=200, seed=0)
    train, val = text[:40_000], story_corpus(n_stories=20, seed=1)[:5_000]
    pp = {k: MarkovChain(order=k, alpha=0.01).fit(train, vocab=text + val).perplexity(val)
          for k in (0, 1, 3, 6, 14)}
    assert pp[0] > pp[1] > pp[3] > pp[6]
    assert pp[14] > pp[6] * 1.2
    backoff = MarkovChain(order=14, alpha=0.01, backoff=True).fit(train, vocab=text + val)
    assert backoff.perplexity(val) < pp[14]


def test_sampling_is_seeded_and_greedy_at_temperature_0():
    chain = MarkovChain(order=2).fit(TEXT)
    a = chain.sample(60, prompt="the", generator=torch.Generator().manual_seed(3))
    b = chain.sample(60, prompt="the", generator=torch.Generator().manual_seed(3))
    c = chain.sample(60, prompt="the", generator=torch.Generator().manual_seed(4))
    assert a == b and a != c and len(a) == 60 and set(a) <= set(chain.vocab)
    greedy = chain.sample(10, prompt="th", temperature=0)
    history = "th"
    for ch in greedy:
        assert chain.stoi[ch] == int(chain.next_probs(history).argmax())
        history += ch
    deterministic = MarkovChain(order=2, alpha=0.0).fit("abcabcabcabc")
    assert deterministic.sample(9, prompt="ab", generator=torch.Generator().manual_seed(0)) == "cabcabcab"


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sample_frequencies_follow_tempered_probabilities(temperature):
    text = "a" * 60 + "b" * 30 + "c" * 10
    chain = MarkovChain(order=0, alpha=0.0).fit(text)
    draws = chain.sample(5_000, temperature=temperature, generator=torch.Generator().manual_seed(0))
    freq = torch.tensor([draws.count(ch) for ch in "abc"], dtype=torch.float64) / len(draws)
    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64) ** (1 / temperature)
    p = p / p.sum()
    assert (freq - p).abs().max() < 0.03   # over 4 standard errors for 5,000 draws


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="order"):
        MarkovConfig(order=-1)
    with pytest.raises(ValueError, match="alpha"):
        MarkovConfig(alpha=-0.1)
    with pytest.raises(RuntimeError, match="fit"):
        MarkovChain().next_probs("a")
    with pytest.raises(ValueError, match="non-empty"):
        MarkovChain().fit("")
    with pytest.raises(ValueError, match="not in vocab"):
        MarkovChain().fit("abc", vocab="ab")
    chain = MarkovChain(order=1).fit("abc")
    with pytest.raises(ValueError, match="vocabulary"):
        chain.log_likelihood("abd")
    with pytest.raises(ValueError, match="temperature"):
        chain.sample(3, temperature=-1)
    assert MarkovChain(PRESETS["bigram"]).order == 1
    assert MarkovChain(PRESETS["trigram"], alpha=0.5).config.alpha == 0.5
    assert "order=1" in repr(chain)
