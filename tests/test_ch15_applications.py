"""Chapter 15: the lesson's inline replacement and inpainting loop give the same images as
coursekit.applications.inpaint; the code judges (parsing, the confined test runner, pass@k
against exact binomials); the ABC cleaner, reader and measures on hand-made tunes, and the
synthesiser against an FFT; SMILES, SELFIES and the MOSES measures on hand-made molecules; the
zoo's chapter-15 models round trip; the gallery widget; the released stubs fail (answer key:
test_check_contract.py)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from nbtools import exec_answer_cells, exec_tagged_cells, notebook

import coursekit as ck
from coursekit import zoo
from coursekit.applications import code as C
from coursekit.applications import inpaint as I
from coursekit.applications import molecules as M
from coursekit.applications import music as MU
from coursekit.checks import ch15
from coursekit.checks.assertions import CheckFailure
from coursekit.data import CharTokenizer
from coursekit.data import smiles as S
from coursekit.data import tunes as T
from coursekit.data.stdlib_code import stdlib_corpus, stdlib_files
from coursekit.lm import LMRun
from coursekit.models import cond_diffusion as CD
from coursekit.models.diffusion import NoiseSchedule
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.train import History, Run


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny CondUNet with its schedule, as a Run (what the zoo returns)."""
    cfg = CD.CondDiffusionConfig.preset("tiny")
    torch.manual_seed(0)
    run = Run(CD.CondUNet(cfg.unet, cfg.n_classes).eval(), History(), cfg)
    run.schedule = NoiseSchedule.from_config(cfg)
    return run


@pytest.fixture(scope="module")
def lesson():
    before = torch.get_num_threads()
    ns = exec_tagged_cells(notebook("notebooks", "15"))
    torch.set_num_threads(before)
    return ns


# --- the lesson's inline code equals the package ---------------------------------------------

@pytest.mark.parametrize("t_prev", [30, 0, -1])
def test_lesson_replacement_matches_the_package(lesson, tiny, t_prev):
    g = torch.Generator().manual_seed(0)
    x, x0 = torch.randn(3, 1, 8, 8, generator=g), torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    mask = I.half_mask(3, hide="right")
    abar = tiny.schedule.alphas_cumprod
    ours = lesson["replace_known"](x, x0, mask, t_prev, abar, torch.Generator().manual_seed(4))
    theirs = I.replace_known(x, x0, mask, t_prev, abar, torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours, theirs)
    assert torch.equal(ours * (1 - mask), x * (1 - mask))                 # hidden pixels: the model's
    if t_prev == -1:
        assert torch.equal(ours * mask, x0 * mask)                        # the clean known pixels come back


def test_lesson_inpainting_matches_the_package(lesson, tiny):
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    mask = I.half_mask(4, hide="bottom")
    ours = lesson["inpaint_digits"](tiny.model, tiny.schedule, x0, mask, n_steps=6, seed=3)
    theirs = I.inpaint(tiny.model, tiny.schedule, x0, mask, n_steps=6, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert torch.equal(theirs * mask, x0 * mask) and tiny.model.training is False


def test_half_masks_and_inpaint_refuse_bad_input(tiny):
    m = I.half_mask(2, hide="left")
    assert m.shape == (2, 1, 8, 8) and m[:, :, :, :4].sum() == 0 and m[:, :, :, 4:].min() == 1
    assert I.half_mask(1, hide="top")[0, 0, :4].sum() == 0
    with pytest.raises(ValueError, match="hide"):
        I.half_mask(2, hide="middle")
    with pytest.raises(ValueError, match="does not fit"):
        I.inpaint(tiny.model, tiny.schedule, torch.zeros(3, 1, 8, 8), I.half_mask(2), n_steps=2)


# --- code ----------------------------------------------------------------------------------------

def test_stdlib_corpus_is_deterministic_ascii_source():
    text, names = stdlib_corpus(50_000)
    again, names2 = stdlib_corpus(50_000)
    assert text == again and names == names2 and len(text) >= 50_000 and text.isascii()
    assert "\t" not in text and all(not n.startswith(("_", "test")) for n in names)
    assert {p.name for p in stdlib_files()} >= set(names)
    with pytest.raises(ValueError, match="at least"):
        stdlib_corpus(10)


def test_parsing_helpers_on_hand_made_code():
    text = "    x = 1\ndef f(a):\n    return a\n\n@dec\ndef g():\n    s = '''\nnot code at column 0\n'''\n\nx = (1,\n2)\ny = [1, 2"
    body = C.complete_lines(text)
    assert body.startswith("def f(a):") and not body.endswith("y = [1, 2")
    pieces = C.top_level_statements(text + "\n\n")
    assert pieces[0] == "def f(a):\n    return a\n" and pieces[1].startswith("@dec\ndef g():")
    assert "not code at column 0" in pieces[1]                           # a docstring line is not a statement
    assert pieces[2].startswith("x = (1,\n2)") and all(C.parses(p) for p in pieces[:3])
    assert not C.parses("def f(:\n") and C.parses("pass\n")
    inside = "        x = 1\n    def m(self):\n        return 1\n\n    def n(self):\n        pass\n    y"
    assert C.complete_lines(inside) == "def m(self):\n    return 1\n\ndef n(self):\n    pass\n"   # dedented
    assert C.top_level_statements(inside + "\n\n")[0] == "def m(self):\n    return 1\n"
    assert C.parse_rate(["x = 1\ny = 2\n", "def f(:\n    pass\n", "zzz"]) == pytest.approx(1 / 3)
    rate, n = C.statement_parse_rate(["a = 1\nb = (\n\nc = 3\n\n"])
    assert n == 3 and rate == pytest.approx(2 / 3)            # the open bracket does not swallow c = 3
    with pytest.raises(ValueError, match="at least one"):
        C.parse_rate([])
    w = C.data_windows("x = 1\n\ny = 2\n\n" * 50, 5, 20, seed=1)
    assert len(w) == 5 and all(len(s) == 20 for s in w) and w == C.data_windows("x = 1\n\ny = 2\n\n" * 50, 5, 20, seed=1)


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (10, 0, 3), (5, 3, 3), (200, 2, 10), (1, 1, 1),
                                   (50, 49, 2), (3000, 11, 250)])
def test_pass_at_k_equals_the_exact_binomial_ratio(n, c, k):
    exact = float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))
    assert C.pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12, abs=1e-12)


def test_pass_at_k_basics_and_errors():
    assert C.pass_at_k(10, 4, 1) == pytest.approx(0.4) and C.pass_at_k(10, 0, 10) == 0.0
    assert C.pass_at_k(10, 6, 5) == 1.0 and 0 < C.pass_at_k(100_000, 3, 1000) < 1
    for bad in [(5, 6, 1), (5, 2, 0), (5, 2, 6), (5, -1, 1), (5.5, 2, 1)]:
        with pytest.raises(ValueError):
            C.pass_at_k(*bad)


def test_the_test_runner_confines_and_times_out():
    task = C.TASKS[0]
    assert C.check_completion(task, "    return a + b\n")
    assert not C.check_completion(task, "    return a - b\n")
    assert C.function_body("    return a + b\nprint('after')\n") == "    return a + b\n"
    assert C.check_completion(task, "    return a + b\nraise SystemExit(3)\n")      # cut at the unindented line
    assert not C.run_tests("while True:\n    pass\n", timeout=1.0)
    assert not C.run_tests("with open('x.txt', 'w') as f:\n    f.write('hi')\n")              # files stay empty
    assert not C.run_tests("import os\nassert os.environ.get('HOME')\n")               # no environment
    assert not C.run_tests("x = bytearray(2 * 1024 ** 3)\n")                          # over the memory limit
    assert all(t.prompt.startswith(f"def {t.name}(") and t.tests.startswith("assert") for t in C.TASKS)


# --- music ---------------------------------------------------------------------------------------

def test_key_signatures():
    assert T.key_signature("G") == {"F": 1} and T.key_signature("Am") == {} and T.key_signature("C") == {}
    assert T.key_signature("Dmix") == {"F": 1} and T.key_signature("Edor") == {"F": 1, "C": 1}
    assert T.key_signature("Bb") == {"B": -1, "E": -1} and T.key_signature("F#m") == {"F": 1, "C": 1, "G": 1}
    assert T.key_pitch_classes("G") == {7, 9, 11, 0, 2, 4, 6}
    for bad in ["H", "Gxyz", "C##"]:
        with pytest.raises(ValueError, match="key"):
            T.key_signature(bad)


def test_read_tune_on_a_hand_made_tune():
    tune = T.read_tune("M:6/8 K:G\nD|GAB c2A|^F2F =F3|z6|B/2")
    assert tune.metre == "6/8" and tune.key == "G" and tune.bar_length == 6
    assert [str(b) for b in tune.bars] == ["1", "6", "6", "6"]
    pitches = [p for p, _ in tune.notes]
    # D = 62; G A B c (= 72) A; ^F (F#4 = 66) and a second F in the bar stays sharp; =F natural (65); rest
    assert pitches[:9] == [62, 67, 69, 71, 72, 69, 66, 66, 65] and pitches[9] is None
    assert tune.notes[4][1] == 2 and tune.notes[-1] == (71, Fraction(1, 2))
    assert T.read_tune("M:C K:C\nc'C,|").notes[0][0] == 84 and T.read_tune("M:C K:C\nc'C,|").notes[1][0] == 48
    for bad in ["M:5/4 K:G\nABC|", "K:G\nABC|", "M:C K:G\nAB#C|", "M:C K:G\n|||"]:
        with pytest.raises(ValueError):
            T.read_tune(bad)


def test_clean_tune_writes_the_canonical_form():
    raw = ('X:1\nT:Test\nM:6/8\nL:1/8\nK:D\n"D"!trill!A>B {g}c | [DFA]2 d (3efg | ~f2 e d3- | d6 :|\n')
    # broken rhythm, a chord's first note, a triplet, ornaments, a tie and a repeat sign
    assert T.clean_tune(raw) == "M:6/8 K:D\nA3/2B/2c|D2de2/3f2/3g2/3|f2ed3|d6|"
    sixteenths = "X:2\nM:2/4\nL:1/16\nK:G\nG2A2 B4|c8|d4e4|f2g2a4|\n"
    assert T.clean_tune(sixteenths) == "M:2/4 K:G\nGAB2|c4|d2e2|fga2|"
    assert T.clean_tune("X:3\nM:7/8\nK:G\nABCDEFGABC|\n") is None                     # unknown metre
    assert T.clean_tune("X:4\nM:C\nK:G\nABcd|\nK:D\nABcd|efga|\n") is None             # key change
    assert T.split_tunes("M:C K:G\nAB|\n\nM:C K:D\ncd|\n") == ["M:C K:G\nAB|", "M:C K:D\ncd|"]
    assert T.tune_corpus(["M:C K:G\nAB|", "M:C K:D\ncd|"]) == "M:C K:G\nAB|\n\nM:C K:D\ncd|\n\n"


def test_tune_measures_on_hand_made_tunes():
    tunes = ["M:3/4 K:G\nD|GAB|F2G|c6|", "M:3/4 K:C\nC|CDE|F^FG|", "not a tune"]
    m = MU.tune_measures(tunes)
    assert m["parse"] == pytest.approx(2 / 3)
    # inner bars: GAB (3 eighths, not 6), F2G (3), c6 (6) | CDE (3), F^FG (3) -> 1 of 5 fill a 3/4 bar
    assert m["n_bars"] == 5 and m["bars_in_metre"] == pytest.approx(1 / 5)
    # notes: D G A B F# G c in G all in key; C C D E F F# G in C: F# is not -> 13 of 14
    assert m["n_notes"] == 14 and m["in_key"] == pytest.approx(13 / 14)
    with pytest.raises(ValueError):
        MU.tune_measures([])


def test_synthesize_plays_the_right_pitch_for_the_right_time():
    tune = T.read_tune("M:C K:C\nA2z2|")                           # A4 = 440 Hz for two eighths, then a rest
    audio = MU.synthesize(tune, tempo=240, sample_rate=8000)        # an eighth lasts 0.25 s
    assert audio.dtype == np.float32 and len(audio) == 8000 and np.abs(audio).max() <= 1
    note = audio[:4000]
    peak = np.fft.rfftfreq(len(note), 1 / 8000)[np.argmax(np.abs(np.fft.rfft(note)))]
    assert abs(peak - 440) < 3 and np.all(audio[4000:] == 0)
    with pytest.raises(ValueError):
        MU.synthesize(tune, tempo=0)


def test_music21_reads_the_canonical_form():
    assert MU.music21_parses("M:6/8 K:G\nD|GAB c2A|B2G A2F|")
    assert not MU.music21_parses("M:6/8 K:G\n")
    assert MU.to_abc("M:C K:D\nAB|").startswith("X:1\nT:generated\nM:C\nL:1/8\nK:D\n")


# --- molecules ----------------------------------------------------------------------------------

def test_canonical_and_moses_metrics_on_hand_made_molecules():
    assert M.canonical("OCC") == M.canonical("CCO") == "CCO"
    assert M.canonical("") is None and M.canonical("C1CC") is None and M.canonical("C1=CC=CC=C1") == "c1ccccc1"
    m = M.moses_metrics(["CCO", "OCC", "C1CC", "", "c1ccccc1", "C1=CC=CC=C1", "CCN", "XYZ"], ["OCC", "CCCC"])
    assert m == pytest.approx({"validity": 5 / 8, "uniqueness": 3 / 5, "novelty": 2 / 3})
    none = M.moses_metrics(["C1CC"], ["CCO"])
    assert none["validity"] == 0 and math.isnan(none["uniqueness"]) and math.isnan(none["novelty"])
    with pytest.raises(ValueError):
        M.moses_metrics([], ["CCO"])


def test_selfies_alphabet_round_trips():
    smiles = ["CCO", "c1ccccc1", "CC(=O)N"]
    selfies = S.to_selfies(smiles)
    alphabet = S.SelfiesAlphabet.of(selfies)
    chars = [alphabet.encode(s) for s in selfies]
    assert all(len(c) == len(list(__import__("selfies").split_selfies(s))) for c, s in zip(chars, selfies))
    back = M.from_selfies([alphabet.decode(c) for c in chars])
    assert [M.canonical(b) for b in back] == [M.canonical(s) for s in smiles]
    with pytest.raises(KeyError, match="not in this alphabet"):
        alphabet.encode("[Xe]")
    assert S.smiles_corpus(["CCO", "C"]) == "CCO\nC\n"
    with pytest.raises(ValueError):
        S.smiles_corpus(["C\nC"])


def test_load_smiles_gives_canonical_distinct_molecules():
    smiles = S.load_smiles(max_len=30)
    assert len(smiles) > 1000 and smiles == sorted(set(smiles))
    sample = smiles[:: max(1, len(smiles) // 50)]
    assert all(M.canonical(s) == s and len(s) <= 30 and "." not in s for s in sample)


# --- the zoo's models, sampling, the widget -------------------------------------------------------

def test_the_zoo_builds_and_reloads_selfies_gpt(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("COURSEKIT_FAST", "1")
    run = zoo.load("selfies-gpt", progress=False)
    again = zoo.load("selfies-gpt", progress=False)
    assert isinstance(again, LMRun) and again.extra["selfies_symbols"] == run.extra["selfies_symbols"]
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), again.model.state_dict().values()))
    mols = M.sample_molecules(again, 6, seed=0)
    assert len(mols) == 6 and mols == M.sample_molecules(again, 6, seed=0)
    assert all(isinstance(m, str) and "\u4e00" > max(m, default=" ") for m in mols)  # decoded, not symbols
    assert {"code-gpt", "tune-gpt", "smiles-gpt", "selfies-gpt"} <= set(zoo.available())


def _tiny_lm(text: str) -> LMRun:
    tok = CharTokenizer(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=1, n_embd=16)).eval()
    return LMRun(model, History(), model.config, tokenizer=tok)


@pytest.fixture(scope="module")
def tiny_runs():
    return {"code": _tiny_lm("def f(x):\n    return x + 1\n\nclass A: pass\n"),
            "tunes": _tiny_lm("M:6/8 K:G\nABc d2e|f3 g3|\n\n"),
            "SMILES": _tiny_lm("CCO\nc1ccccc1\nCC(=O)N\n")}


def test_applications_gallery_marks_each_sample(tiny_runs):
    w = ck.widgets.applications_gallery(tiny_runs, n=4, length=40)
    assert w.error == "" and w.n_draws == 1 and w.png.startswith(b"\x89PNG") and w.kind == "code"
    assert w.samples == C.sample_code(tiny_runs["code"], 4, 40, 0.8, 0)
    assert w.valid == [bool(C.complete_lines(s).strip()) and C.parses(C.complete_lines(s)) for s in w.samples]
    before = w.png
    w.set(application="SMILES", temperature=1.5)
    assert w.n_draws == 2 and w.kind == "molecules" and w.png != before
    assert w.valid == [M.canonical(s) is not None for s in w.samples]
    assert w.validity == pytest.approx(sum(w.valid) / 4)
    w.set(application="tunes")
    assert w.kind == "tunes" and len(w.samples) == 4


def test_applications_gallery_refuses_bad_arguments(tiny_runs):
    with pytest.raises(ValueError, match="name each model"):
        ck.widgets.applications_gallery({"poems": tiny_runs["code"]})
    with pytest.raises(TypeError, match="language-model"):
        ck.widgets.applications_gallery({"code": Run(torch.nn.Linear(2, 2), History(), None)})
    with pytest.raises(ValueError, match="n must be"):
        ck.widgets.applications_gallery(tiny_runs, n=0)


# --- the checks and the notebooks ------------------------------------------------------------

EXERCISES = ["pass_at_k", "moses_metrics", "renoise"]


def test_check_references_agree_with_the_package():
    for n, c, k in [(10, 3, 5), (500, 7, 40)]:
        assert ch15._pass_exact(n, c, k) == pytest.approx(C.pass_at_k(n, c, k), rel=1e-12)
    gen, train = ["CCO", "OCC", "", "C1CC", "c1ccccc1"], ["CCO"]
    assert ch15._moses(gen, train) == pytest.approx(M.moses_metrics(gen, train))


def test_the_released_exercises_fail_every_check_until_written():
    ns = exec_answer_cells("exercises", "15", {"torch": torch, "math": math})
    for name in EXERCISES:
        with pytest.raises(CheckFailure, match="not written yet"):
            getattr(ch15, f"check_{name}")(ns[name])


# --- the chat fine-tune ---------------------------------------------------------------------------

def test_qa_pairs_state_the_worlds_facts():
    from coursekit.data.qa import answer_correct, qa_corpus, qa_pairs, split_towns
    from coursekit.data.stories import TOWNS, StoryWorld
    world = StoryWorld()
    pairs = qa_pairs(world, ["Ashford"])
    assert [p.kind for p in pairs] == ["known_for", "landmark"]
    assert pairs[0].text == f"Q: What is Ashford known for?\nA: Ashford is known for {world.known_for['Ashford']}.\n"
    assert pairs[1].prompt == "Q: What is there in Ashford?\nA:" and pairs[1].value == world.landmark["Ashford"]
    assert (pairs[0].opening, pairs[1].opening) == ("Ashford is known for", "In Ashford there is")
    assert answer_correct(f" In Ashford there is {world.landmark['Ashford']}.\nQ: more", pairs[1])
    assert not answer_correct(" In Ashford there is nothing.\n" + world.landmark["Ashford"], pairs[1])
    assert not answer_correct(f" In Redwater there is {world.landmark['Ashford']}.", pairs[1])   # the wrong town
    train, held = split_towns(6, seed=0)
    assert len(train) == 6 and not set(train) & set(held) and set(train) | set(held) == set(TOWNS)
    assert split_towns(6, seed=1) != (train, held) and split_towns(6, seed=0) == (train, held)
    text = qa_corpus(pairs, repeats=3, seed=0, stories=["s1\n", "s2"])
    assert text.count("Q: ") == 6 and text.count("s1\n") + text.count("s2\n") == 6
    with pytest.raises(ValueError, match="not towns"):
        qa_pairs(world, ["Atlantis"])
    with pytest.raises(ValueError):
        split_towns(12)


def test_add_characters_keeps_the_model_and_chat_finetune_leaves_it_alone():
    from coursekit.applications.chat import CHAT_CHARS, add_characters, answer_accuracy, chat_finetune
    from coursekit.data.qa import qa_pairs
    from coursekit.data.stories import story_corpus
    text = story_corpus(30, seed=0)
    tok = CharTokenizer(text + "QW:?")
    tok = CharTokenizer(chars=[c for c in tok.chars if c not in CHAT_CHARS])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    run = LMRun(model, History(), model.config, tokenizer=tok)
    bigger = add_characters(run)
    assert bigger.tokenizer.chars == tok.chars + list(CHAT_CHARS) and bigger.config.vocab_size == tok.vocab_size + 4
    x = tok.encode(text[:50])[None]
    with torch.no_grad():
        torch.testing.assert_close(bigger.model(x)[0][..., : tok.vocab_size], model(x)[0])
    assert bigger.model.head.weight is bigger.model.tok_emb.weight
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = qa_pairs(towns=["Ashford", "Redwater"])
    chat = chat_finetune(run, pairs, 3, progress=False, stories=text.split("\n\n")[:5])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())         # the base run untouched
    assert not torch.equal(chat.model.tok_emb.weight[: tok.vocab_size], model.tok_emb.weight)
    assert 0.0 <= answer_accuracy(chat, pairs) <= 1.0
    with pytest.raises(TypeError, match="character-level"):
        add_characters(LMRun(model, History(), model.config, tokenizer=object()))
