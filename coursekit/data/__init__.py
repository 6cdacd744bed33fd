"""Data sets that need no network: digits, 2-D toys, a generated story corpus, text tools."""
from coursekit.data.digits import DigitSplit, load_digits
from coursekit.data.text import (CharTokenizer, Tokenizer, get_batch, register_tokenizer,
                                 split_text, tokenizer_from_state)
from coursekit.data.toy2d import (grid_centers, grid_of_gaussians, make_moons, ring_centers,
                                  ring_of_gaussians, spirals, two_blobs)
from coursekit.data.stories import StoryWorld, story_corpus
from coursekit.data.shakespeare import load_shakespeare

__all__ = [
    "DigitSplit", "load_digits", "CharTokenizer", "Tokenizer", "tokenizer_from_state",
    "register_tokenizer", "get_batch", "split_text",
    "make_moons", "ring_of_gaussians", "ring_centers", "grid_of_gaussians", "grid_centers",
    "spirals", "two_blobs", "StoryWorld", "story_corpus", "load_shakespeare",
]

# chapter 08: the byte-level BPE and word tokenizers register their kinds ("bpe", "word")
# with tokenizer_from_state; stdlib and torch only, so this stays light
import coursekit.tokenizers  # noqa: E402,F401
