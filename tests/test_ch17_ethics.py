"""Chapter 17: the lesson's inline watermark equals coursekit.watermark; the watermark's
statistics (a null z near N(0, 1) over keys, detection of watermarked text, edits); the
sampler's logits hook; the detector on an easy fake and its threshold calibration; planted
secrets, de-duplication, exposure and a tiny model that memorises a repeated note; licence
tags and the cards; the spaced word tokenizer; the watermark explorer widget.
The checks' right and wrong answers live in tests/answers/ch17.py (test_check_contract.py)."""
from __future__ import annotations

import math

import pytest
import torch
from nbtools import exec_tagged_cells, notebook

import coursekit as ck
from coursekit import cards, detect, memorise
from coursekit import watermark as W
from coursekit.data import CharTokenizer, load_digits
from coursekit.evaluate import sequence_nll, texts_nll
from coursekit.lm import LMData, LMRun, LMTrainConfig, train_lm
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.sampling import generate
from coursekit.train import History
from coursekit.tokenizers.words import SPACED_WORD_SPLIT, WORD_SPLIT, WordTokenizer


@pytest.fixture(autouse=True)
def one_thread():
    """Small models train fastest on one thread (and two threads crawl on a busy CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "17"))
    torch.set_num_threads(before)
    return ns


class Bigram(torch.nn.Module):
    """A language model with the GPT's calling convention: next-token logits from a (V, V) table."""

    def __init__(self, V: int, sharpness: float = 3.0, seed: int = 0):
        super().__init__()
        self.table = torch.nn.Parameter(sharpness * torch.randn(V, V, generator=torch.Generator().manual_seed(seed)))
        self.config = GPTConfig(vocab_size=V, block_size=512, n_layer=1, n_head=1, n_embd=8)

    def forward(self, idx, targets=None, cache=None):
        return self.table[idx], None

    def new_cache(self):
        return None


def _texts(model, wm, n=64, length=150, delta=None, seed=0):
    prompts = torch.randint(0, model.config.vocab_size, (n, 1), generator=torch.Generator().manual_seed(seed))
    proc = None if delta is None else W.Watermark(wm.vocab_size, key=wm.key, gamma=wm.gamma, delta=delta).processor
    with torch.no_grad():
        return generate(model, prompts, length, generator=torch.Generator().manual_seed(seed + 1),
                        use_cache=False, logits_processor=proc)


# --- the lesson's inline code equals the package ---------------------------------------------

def test_lesson_watermark_equals_the_package(lesson):
    V = 37
    wm = W.Watermark(V, key=lesson["KEY"], gamma=lesson["GAMMA"], delta=2.0)
    table = lesson["green_table"](V)
    assert torch.equal(table, wm.table)
    idx, logits = torch.randint(0, V, (5, 9)), torch.randn(5, V)
    torch.testing.assert_close(lesson["watermark_processor"](table, 2.0)(idx, logits), wm.processor(idx, logits))
    tokens = torch.randint(0, V, (120,))
    assert lesson["z_every_token"](tokens, table, start=4) == pytest.approx(wm.z_score(tokens, 4, unique=False))


# --- the watermark ---------------------------------------------------------------------------

def test_green_lists_have_gamma_v_tokens_and_depend_on_key_and_previous_token():
    a = W.green_list(3, 101, 0.25, key=1)
    assert a.dtype == torch.bool and int(a.sum()) == round(0.25 * 101)
    assert not torch.equal(a, W.green_list(4, 101, 0.25, key=1))
    assert not torch.equal(a, W.green_list(3, 101, 0.25, key=2))
    assert torch.equal(a, W.green_list(3, 101, 0.25, key=1))
    with pytest.raises(ValueError, match="gamma"):
        W.green_list(0, 10, 1.0, key=1)
    with pytest.raises(ValueError, match="delta"):
        W.Watermark(10, delta=-1.0)


def test_watermarked_text_is_detected_and_plain_text_is_not():
    model, wm = Bigram(60), W.Watermark(60, key=5, gamma=0.25)
    marked, plain = _texts(model, wm, delta=3.0), _texts(model, wm, seed=7)
    z_marked = torch.tensor([wm.z_score(t, start=1) for t in marked])
    z_plain = torch.tensor([wm.z_score(t, start=1) for t in plain])
    assert (z_marked > W.Z_1PCT).float().mean() > 0.9
    assert (z_plain > W.Z_1PCT).float().mean() < 0.1
    assert wm.detect(marked[0], start=1) == bool(z_marked[0] > W.Z_1PCT)
    # the edits wash it out, more of them more so
    edited = [torch.tensor([wm.z_score(W.random_edits(t, r, 60, torch.Generator().manual_seed(i), start=1), 1)
                            for i, t in enumerate(marked)]).mean() for r in (0.0, 0.3, 0.9)]
    assert edited[0] > edited[1] > edited[2]


def test_the_null_z_is_standard_normal_over_keys():
    """For one fixed plain text, each key draws new green lists: z over keys is about N(0, 1)."""
    model = Bigram(40)
    text = _texts(model, W.Watermark(40), n=1, length=300, seed=3)[0]
    zs = torch.tensor([W.Watermark(40, key=k, gamma=0.5).z_score(text, start=1) for k in range(300)])
    assert abs(zs.mean().item()) < 0.25 and 0.75 < zs.std().item() < 1.25
    assert (zs > W.Z_1PCT).float().mean() < 0.04


def test_distinct_pairs_keep_the_null_on_repetitive_text():
    model = Bigram(30, sharpness=12.0)                    # nearly deterministic: long repeated cycles
    plain = _texts(model, W.Watermark(30), n=40, length=200, seed=11)
    spread = {u: torch.tensor([W.Watermark(30, key=k, gamma=0.5).z_score(t, 1, unique=u)
                               for k in range(10) for t in plain[:8]]).std().item() for u in (True, False)}
    assert spread[True] < 1.5 < spread[False]


def test_random_edits_change_the_requested_share_after_start():
    t = torch.arange(100) % 7
    out = W.random_edits(t, 0.3, 1000, torch.Generator().manual_seed(0), start=20)
    assert torch.equal(out[:20], t[:20]) and 22 <= int((out != t).sum()) <= 24     # 30% of the 80 after start
    with pytest.raises(ValueError, match="rate"):
        W.random_edits(t, 1.5, 10, torch.Generator())


def test_z_score_refuses_bad_input():
    wm = W.Watermark(10)
    with pytest.raises(ValueError, match="one text"):
        wm.z_score(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="start"):
        wm.z_score(torch.zeros(5, dtype=torch.long), start=5)


def test_generate_applies_the_logits_processor_at_every_step():
    V = 12
    model = Bigram(V)
    seen = []

    def ban_three(idx, logits):
        seen.append(idx.shape[1])
        return logits.index_fill(-1, torch.tensor([3]), float("-inf"))

    out = generate(model, torch.zeros(4, 1, dtype=torch.long), 30, logits_processor=ban_three,
                   generator=torch.Generator().manual_seed(0), use_cache=False)
    assert not (out[:, 1:] == 3).any()
    assert seen == list(range(1, 31))


# --- the detector ----------------------------------------------------------------------------

def test_quantise_gives_the_scans_grey_levels():
    x = torch.rand(5, 1, 8, 8) * 1.4 - 0.2
    q = detect.quantise(x)
    assert q.min() >= 0 and q.max() <= 1 and torch.equal(q * 16, (q * 16).round())
    real = load_digits(seed=0).x_train
    assert torch.equal(detect.quantise(real), real)


def test_a_detector_catches_an_easy_fake_and_calibrates_its_threshold():
    real = load_digits(seed=0)
    noise = detect.quantise(torch.rand(400, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    det = detect.train_detector(real.x_train, {"noise": noise}, epochs=3, progress=False)
    test_noise = detect.quantise(torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    assert detect.flagged_share(det, test_noise) > 0.9
    assert detect.flagged_share(det, real.x_val) < 0.1
    thr, rate = detect.rate_at_fpr(det.prob_generated(real.x_val), det.prob_generated(test_noise), 0.01)
    assert (det.prob_generated(real.x_val) > thr).float().mean() <= 0.01 and rate > 0.8


def test_detector_inputs_are_checked():
    real = torch.zeros(4, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        detect.train_detector(torch.zeros(4, 64), {"x": real})
    with pytest.raises(ValueError, match="at least one generator"):
        detect.train_detector(real, {})
    with pytest.raises(ValueError, match="unknown generator"):
        detect.generator_samples("stylegan", 4)
    with pytest.raises(ValueError, match="fpr"):
        detect.rate_at_fpr(torch.zeros(3), torch.zeros(3), 1.0)


def test_rate_at_fpr_keeps_at_most_the_share_above():
    null = torch.arange(100.0)
    thr, rate = detect.rate_at_fpr(null, torch.tensor([98.5, 99.5, 50.0, 97.0]), 0.01)
    assert thr == 98.0 and rate == 0.5                     # 99 is the one negative above 98
    assert detect.rate_at_fpr(null, torch.tensor([99.0, 100.0]), 0.0) == (99.0, 0.5)


# --- memorisation ----------------------------------------------------------------------------

def test_secrets_are_planted_only_in_training_and_deduplication_keeps_one_copy():
    secrets = memorise.make_secrets(6, copies=(1, 10, 100), seed=0)
    assert [s.copies for s in secrets] == [1, 10, 100] * 2
    assert len({s.code for s in secrets}) == 6 and all(len(s.code) == 6 and s.code.isdigit() for s in secrets)
    train, val = memorise.secret_corpus(100, secrets, seed=0)
    for s in secrets:
        assert train.count(s.note) == s.copies and s.note not in val
    dedup, _ = memorise.secret_corpus(100, secrets, dedup=True, seed=0)
    assert all(dedup.count(s.note) == 1 for s in secrets)
    assert secrets[0].prompt + secrets[0].code + "." == secrets[0].note
    with pytest.raises(ValueError, match="between 1 and"):
        memorise.make_secrets(99)


def test_exposure_ranks_from_the_top_with_ties_against():
    assert memorise.exposure(5.0, torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(2.0)
    assert memorise.exposure(2.0, torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(math.log2(4 / 3))  # tie: rank 3
    assert memorise.exposure(0.0, torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(0.0)


def test_a_small_model_memorises_a_repeated_note_and_exposure_sees_it():
    secret = memorise.Secret("Ada", "604213", 1)
    other = memorise.Secret("Bram", "185072", 1)
    text = ("filler text about a town. " * 3 + secret.note + "\n") * 40 + other.prompt + "xxxxxx.\n"
    tok = CharTokenizer(text + "0123456789")
    data = LMData(tok, tok.encode(text), tok.encode(text[:400]))
    cfg = GPTConfig.preset("gpt-nano", vocab_size=tok.vocab_size)
    run = train_lm(cfg, data, 250, seed=0, progress=False, train_config=LMTrainConfig(eval_every=0))
    assert memorise.greedy_codes(run, [secret])["Ada"] == secret.code
    exp = memorise.secret_exposures(run, [secret, other], n_candidates=63, seed=0)
    assert exp["Ada"] == pytest.approx(6.0)                # rank 1 of 64
    assert exp["Ada"] > exp["Bram"]
    # scores of codes of different lengths, in groups, agree with one by one
    scores = memorise.code_log_likelihoods(run, secret.prompt, ["6", "60421", secret.code])
    for code, s in zip(["6", "60421", secret.code], scores):
        assert s == pytest.approx(memorise.code_log_likelihoods(run, secret.prompt, [code])[0].item(), abs=1e-4)


# --- licences and cards ----------------------------------------------------------------------

def test_documents_need_a_known_licence_and_a_source():
    with pytest.raises(ValueError, match="unknown licence"):
        cards.Document("text", "somewhere", "WTFPL")
    with pytest.raises(ValueError, match="source"):
        cards.Document("text", "", "MIT")


def test_the_data_card_counts_what_was_trained_on():
    docs = cards.tag(["aa", "bbb"], "stories", "MIT") + cards.tag(["c"], "notes", "personal-data")
    card = cards.data_card(docs, name="demo", removed={"exact duplicates": 2}, tokenizer=CharTokenizer("aabbbc"))
    assert card.n_docs == 3 and card.n_chars == 6 and card.n_tokens == 6
    assert card.by_licence == {"MIT": (2, 5), "personal-data": (1, 1)}
    assert card.by_source == {"stories": (2, 5), "notes": (1, 1)}
    text = card.markdown()
    assert "exact duplicates: 2" in text and "| personal-data | 1 | 16.7% |" in text
    assert cards.data_card(docs[::-1], name="demo").digest != card.digest
    with pytest.raises(TypeError, match="not tagged"):
        cards.data_card(["plain text"], name="demo")
    with pytest.raises(ValueError, match="no documents"):
        cards.data_card([], name="demo")


def test_the_model_card_reads_the_run():
    tok = CharTokenizer("hello world\n")
    data = LMData.from_text("hello world\n" * 100, tokenizer=tok)
    run = train_lm(GPTConfig.preset("gpt-nano", vocab_size=tok.vocab_size), data, 5, seed=0, progress=False)
    card = cards.data_card(cards.tag(["hello world"], "demo", "CC0-1.0"), name="demo")
    text = cards.model_card("demo model", run, card, {"validation loss": "1.23"}, "teaching", "anything else",
                            ["risk one"], ["caveat one"])
    n_params = sum(p.numel() for p in run.model.parameters())
    assert f"{n_params:,} parameters" in text and "**Training**: 5 steps" in text
    assert "| validation loss | 1.23 |" in text and "CC0-1.0 (1)" in text and "- risk one" in text


# --- the spaced word tokenizer and the scorer helper -----------------------------------------

def test_spaced_words_round_trip_and_carry_their_space():
    text = ck.data.story_corpus(20, seed=1)
    tok = WordTokenizer(text, split=SPACED_WORD_SPLIT)
    assert tok.decode(tok.encode(text)) == text
    assert " " not in tok.words                           # no token is a bare space
    again = WordTokenizer.from_state(tok.state())
    assert torch.equal(again.encode(text), tok.encode(text))
    assert "split" not in WordTokenizer(text).state()      # the default is saved as before
    assert WordTokenizer(text, split=WORD_SPLIT).vocab_size < tok.vocab_size
    with pytest.raises(ValueError, match="regular expression"):
        WordTokenizer(text, split="(")


def test_texts_nll_cuts_to_one_length_and_scores_like_sequence_nll():
    tok = CharTokenizer("abc ")
    model = GPT(GPTConfig.preset("gpt-nano", vocab_size=tok.vocab_size)).eval()
    run = LMRun(model, History(), model.config, tokenizer=tok)
    got = texts_nll(run, ["abcabc a", "cab abc"])
    ids = torch.stack([tok.encode("abcabc "), tok.encode("cab abc")])
    torch.testing.assert_close(got, sequence_nll(model, ids, start=1))
    with pytest.raises(ValueError, match="n_chars"):
        texts_nll(run, ["abc", "a"], n_chars=3)


# --- the widget ------------------------------------------------------------------------------

def test_ethics_explorer_moves_with_length_and_edits():
    model, wm = Bigram(50), W.Watermark(50, key=9, gamma=0.25)
    texts = {0.0: _texts(model, wm, n=24, length=120, seed=2), 3.0: _texts(model, wm, n=24, length=120, delta=3.0)}
    w = ck.widgets.ethics_explorer(texts, wm, prompt_len=1)
    assert w.error == "" and w.png.startswith(b"\x89PNG")
    full = w.detection
    assert full > 0.8 and w.false_alarms < 0.2
    expected = torch.tensor([wm.z_score(t[:1 + w.values["length"]], start=1) for t in texts[3.0]])
    torch.testing.assert_close(w.z_marked, expected)
    before = w.png
    w.set(edits=0.5)
    assert w.png != before and w.z_marked.mean() < expected.mean()
    w.set(edits=0.0, length=20)
    assert w.detection <= full
    with pytest.raises(ValueError, match="delta 0.0"):
        ck.widgets.ethics_explorer({3.0: texts[3.0]}, wm, prompt_len=1)
    with pytest.raises(ValueError, match="prompt_len"):
        ck.widgets.ethics_explorer(texts, wm, prompt_len=115)
