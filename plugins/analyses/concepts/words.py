"""Words of captions: content words (stop words and numbers dropped) and their counts, for labelling a latent by
its top stimuli's captions and an ROI by its units' retrieved captions."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable

STOP_WORDS = frozenset("""a an the and or of on in at to for with by from into onto over under near is are was were be
been being this that these those it its as there here one two three four five some very""".split())
WORD = re.compile(r"[a-z]+")


def singular(word: str) -> str:
    """A plural noun's singular by the regular English rules (crosses → cross, circles → circle); others unchanged."""
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Lower-case alphabetic words of ``text`` that are not stop words, plurals made singular (so 'circle' and
    'circles' count as one word)."""
    return [singular(w) for w in WORD.findall(text.lower()) if w not in STOP_WORDS and len(w) > 1]


def word_counts(texts: Iterable[str], weights: Iterable[float] | None = None) -> Counter[str]:
    """Content-word counts over ``texts`` (each word counted once per text, times its weight)."""
    counts: Counter[str] = Counter()
    for text, weight in zip(texts, itertools.repeat(1.0) if weights is None else weights):
        for word in dict.fromkeys(content_words(text)):
            counts[word] += weight
    return counts


def label(texts: Iterable[str], n: int = 3, drop: set[str] | frozenset[str] = frozenset()) -> str:
    """The ``n`` most frequent content words of ``texts`` not in ``drop``, joined (ties in first-seen order)."""
    counts = word_counts(texts)
    return " ".join([word for word, _ in counts.most_common() if word not in drop][:n])


def common_words(texts: Iterable[str], above: float = 0.5) -> set[str]:
    """Words found in more than ``above`` of ``texts``: they tell no text apart (a caption template's words)."""
    texts = list(texts)
    counts = word_counts(texts)
    return {word for word, count in counts.items() if count > above * len(texts)}
