"""Retrieval for retrieval-augmented generation (chapter 16): BM25 over a small document store.

A language model answers from what its weights hold; when the world changes after training
its answers go stale, and it gives them as confidently as the right ones. Retrieval puts
the facts in the prompt instead: score every document of a store against the question,
and write the best one before the question (Lewis et al., 2020, "Retrieval-augmented
generation for knowledge-intensive NLP tasks").

The scorer is Okapi BM25 (Robertson and Zaragoza, 2009, "The probabilistic relevance
framework: BM25 and beyond", eq. 3.15 with the idf of eq. 3.3 plus one, as Lucene writes it)::

    score(q, d) = sum over distinct query terms t of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))

with ``tf(t, d)`` the count of term t in document d, ``|d|`` its length in terms, ``avgdl``
the mean length, N the number of documents and n(t) how many contain t.

    store = BM25(sentences)                   # index once
    store.scores("Ashford is known for")      # (N,) one score per document
    store.search("Ashford is known for", k=2) # [(index, score), ...] best first
"""
from __future__ import annotations

import math
import re
from collections import Counter

import torch

__all__ = ["tokenize", "bm25_scores", "BM25", "split_sentences", "fact_questions", "sentence_store", "rag_prompt",
           "reading_examples", "answer_batch", "finetune_reader", "answer_confidence", "correct",
           "evaluate_facts"]

_TERM = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case word terms of ``text`` (letters and digits; punctuation dropped)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TERM.findall(text.lower())


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split after '.', '!' or '?' followed by a space or the end)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def bm25_scores(query: list[str], docs: list[list[str]], k1: float = 1.5, b: float = 0.75) -> torch.Tensor:
    """BM25 score of every tokenised document for a tokenised query.

    1. document frequency n(t) of each distinct query term, and the mean length avgdl;
    2. idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5)) (positive for every t);
    3. per document, each distinct query term adds idf(t) times its saturated, length-normalised
       count tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)); a repeated query term counts once.

    Args:
        query: the query's terms (``tokenize(question)``).
        docs: N documents, each a list of terms.
        k1: how fast a term's count saturates (0: presence only; large: raw counts).
        b: how much a long document is penalised (0: not at all; 1: fully by |d| / avgdl).
    Returns:
        (N,) float64 tensor of scores.
    """
    if not docs:
        raise ValueError("docs is empty: BM25 needs at least one document")
    if k1 < 0 or not 0 <= b <= 1:
        raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
    N = len(docs)
    lengths = torch.tensor([len(d) for d in docs], dtype=torch.float64)          # (N,)
    avgdl = max(lengths.mean().item(), 1e-12)
    counts = [Counter(d) for d in docs]
    norm = k1 * (1 - b + b * lengths / avgdl)                                     # (N,)
    scores = torch.zeros(N, dtype=torch.float64)
    for term in dict.fromkeys(query):                                             # distinct, in order
        tf = torch.tensor([c[term] for c in counts], dtype=torch.float64)         # (N,)
        n_t = int((tf > 0).sum())
        idf = math.log(1 + (N - n_t + 0.5) / (n_t + 0.5))
        scores += torch.where(tf > 0, idf * tf * (k1 + 1) / (tf + norm).clamp_min(1e-12), 0.0)
    return scores


class BM25:
    """A document store indexed for BM25: ``scores``, ``search`` and ``retrieve``.

    Args:
        documents: the texts to search (sentences, fact sheets, stories).
        k1, b: BM25's parameters (Robertson and Zaragoza's usual 1.2-2.0 and 0.75).
    """

    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75):
        if not documents or not all(isinstance(d, str) for d in documents):
            raise ValueError("documents must be a non-empty list of strings")
        self.documents = list(documents)
        self.k1, self.b = k1, b
        self.terms = [tokenize(d) for d in self.documents]

    def __len__(self) -> int:
        return len(self.documents)

    def scores(self, query: str) -> torch.Tensor:
        """(N,) BM25 scores of every document for the question ``query``."""
        return bm25_scores(tokenize(query), self.terms, self.k1, self.b)

    def search(self, query: str, k: int = 1) -> list[tuple[int, float]]:
        """The ``k`` best documents as (index, score), best first (ties: the earlier document)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        s = self.scores(query)
        order = sorted(range(len(s)), key=lambda i: (-s[i].item(), i))[:k]
        return [(i, s[i].item()) for i in order]

    def retrieve(self, query: str, k: int = 1) -> list[str]:
        """The texts of the ``k`` best documents, best first."""
        return [self.documents[i] for i, _ in self.search(query, k)]


# --- the story world's facts as questions, a store to search, a reader to answer ---------------

def fact_questions(world) -> list[tuple[str, str, str]]:
    """Every fact of a ``StoryWorld`` as (question, answer, town): "Ashford is known for" ->
    "its bells", and "In Ashford there is" -> "a long pier"; 24 questions for 12 towns."""
    from coursekit.data.stories import TOWNS
    return ([(f"{t} is known for", world.known_for[t], t) for t in TOWNS]
            + [(f"In {t} there is", world.landmark[t], t) for t in TOWNS])


def sentence_store(world, n_stories: int = 300, seed: int = 0) -> list[str]:
    """The distinct sentences of ``n_stories`` stories of ``world``: a document store in which a
    fact is one sentence among many (chunking by sentence keeps a passage inside the story
    model's 128-character context)."""
    sentences = []
    for story in world.stories(n_stories, seed=seed):
        sentences += split_sentences(story.text)
    return list(dict.fromkeys(sentences))


def rag_prompt(passage: str, question: str) -> str:
    """The retrieved passage, then the question: what the reader continues."""
    return f"{passage} {question}"


def reading_examples(world_seeds, per_world: int = 8, max_chars: int = 129, seed: int = 0) -> list[tuple[str, str]]:
    """(prompt, answer) pairs for teaching the model to answer from the passage.

    Each comes from a freshly drawn world (one per seed in ``world_seeds``, none of them the
    worlds the lesson asks about), so the answer can only be read from the passage: a
    story's fact sentence, then a question it answers, then " answer."
    """
    import random
    from coursekit.data.stories import StoryWorld
    rng = random.Random(seed)
    out = []
    for ws in world_seeds:
        world = StoryWorld(ws)
        for story in world.stories(per_world, seed=ws):
            fact = split_sentences(story.text)[1]                     # the story's fact sentence
            town = story.town
            qa = [(q, a) for q, a in ((f"{town} is known for", world.known_for[town]),
                                      (f"In {town} there is", world.landmark[town])) if a in fact]
            q, a = rng.choice(qa)
            prompt, answer = rag_prompt(fact, q), f" {a}."
            if len(prompt) + len(answer) <= max_chars:
                out.append((prompt, answer))
    return out


def answer_batch(tokenizer, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for a batch of (prompt, answer): the loss falls on the answer only.

    Returns:
        x (B, L - 1) ids (padded with spaces) and y (B, L - 1) next-token targets, -100
        (ignored by cross-entropy) except where the next token is part of the answer.
    """
    pad = tokenizer.encode(" ")[0].item()
    L = max(len(p) + len(a) for p, a in pairs)
    x = torch.full((len(pairs), L - 1), pad, dtype=torch.int64)               # (B, L - 1)
    y = torch.full((len(pairs), L - 1), -100, dtype=torch.int64)              # (B, L - 1)
    for i, (p, a) in enumerate(pairs):
        ids = tokenizer.encode(p + a)
        x[i, :len(ids) - 1] = ids[:-1]
        y[i, len(p) - 1:len(ids) - 1] = ids[len(p):]
    return x, y


def finetune_reader(run, examples: list[tuple[str, str]], n_steps: int, *, batch_size: int = 16,
                    lr: float = 3e-3, seed: int = 0, progress: bool = True):
    """A copy of ``run`` fine-tuned to answer from the passage in its prompt.

    AdamW on the answer tokens of random batches of ``examples`` (``answer_batch``), warmup
    over 10 steps then linear decay; the global random state is left alone.
    Returns:
        An ``LMRun`` with the fine-tuned copy (``run`` is unchanged) and its history ("loss").
    """
    import copy
    import random
    import time
    from coursekit.lm import LMRun
    from coursekit.train import train
    if not examples:
        raise ValueError("no examples to fine-tune on")
    model = copy.deepcopy(run.model)
    model.train()
    opt = model.configure_optimizer(lr=lr, weight_decay=0.0)
    rng = random.Random(seed)

    def step(i: int) -> dict:
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (i + 1) / 10) * (1 - i / n_steps)
        x, y = answer_batch(run.tokenizer, rng.sample(examples, min(batch_size, len(examples))))
        _, loss = model(x.to(next(model.parameters()).device), y.to(next(model.parameters()).device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return {"loss": loss.item()}

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start = time.perf_counter()
        history = train(step, n_steps, desc="teaching the model to read its prompt", show=progress)
        seconds = time.perf_counter() - start
    model.eval()
    return LMRun(model, history, run.config, seconds, tokenizer=run.tokenizer, train_config=run.train_config)


@torch.no_grad()
def answer_confidence(run, prompts: list[str], n_chars: int = 6) -> torch.Tensor:
    """The probability the model gives its own greedy answer's first ``n_chars`` characters.

    Returns:
        (len(prompts),) float tensor: the product of the greedy next-character probabilities.
    """
    model, tok = run.model, run.tokenizer
    device = next(model.parameters()).device
    block = model.config.block_size
    out = torch.empty(len(prompts))
    for i, p in enumerate(prompts):
        idx = tok.encode(p)[None].to(device)                                   # (1, T0)
        prob = 1.0
        for _ in range(n_chars):
            logits, _ = model(idx[:, -block:])
            probs = torch.softmax(logits[0, -1].float(), -1)                   # (V,)
            nxt = int(probs.argmax())
            prob *= probs[nxt].item()
            idx = torch.cat([idx, torch.tensor([[nxt]], device=device)], 1)
        out[i] = prob
    return out


def correct(continuation: str, answer: str) -> bool:
    """Whether a continuation starts with the answer (spaces around it ignored)."""
    return continuation.strip().startswith(answer)


def evaluate_facts(run, world, store: "BM25 | None" = None, passages: str = "retrieved",
                   max_new_tokens: int = 24) -> dict:
    """Ask ``run`` every question of ``fact_questions(world)`` (greedy) and score the answers.

    Args:
        store: the document store; None asks closed-book (the question alone).
        passages: "retrieved" puts the store's best passage for the question before it;
            "wrong" puts the best passage for the *next* town's same question (a retrieval
            miss), to see whether the model copies it.
    Returns:
        {"accuracy": share right, "retrieval_hit": share whose passage holds the answer,
         "copied": share answering with the wrong passage's fact ("wrong" only),
         "prompts", "answers": the continuations, "n"}
    """
    from coursekit.data.stories import TOWNS
    from coursekit.prompting import complete
    if passages not in ("retrieved", "wrong"):
        raise ValueError(f"passages must be 'retrieved' or 'wrong', got {passages!r}")
    qs = fact_questions(world)
    prompts, hits, decoys = [], [], []
    for q, a, town in qs:
        if store is None:
            prompts.append(q)
            continue
        if passages == "wrong":
            other = TOWNS[(TOWNS.index(town) + 1) % len(TOWNS)]
            q_other = q.replace(town, other)
            decoys.append(next(oa for oq, oa, ot in qs if oq == q_other))
            passage = store.retrieve(q_other, 1)[0]
        else:
            passage = store.retrieve(q, 1)[0]
        hits.append(a in passage and town in passage)
        prompts.append(rag_prompt(passage, q))
    outs = complete(run, prompts, max_new_tokens)
    out = {"accuracy": sum(correct(o, a) for o, (_, a, _) in zip(outs, qs)) / len(qs),
           "retrieval_hit": sum(hits) / len(hits) if hits else float("nan"),
           "prompts": prompts, "answers": outs, "n": len(qs)}
    if decoys:
        out["copied"] = sum(correct(o, d) for o, d in zip(outs, decoys)) / len(qs)
    return out
