"""Structured mutations of a valid input, and the no-echo check, shared by the fuzz tests.

Random bytes rarely get past a parser's first check (a magic, a length, a status word); a valid input with a
few bytes flipped, cut, repeated or inserted reaches the checks behind it. `leaked_pieces` is how a test says
"the error message quotes none of what it was given": no run of 8 characters of the input appears in it,
except where the message says it in its own words.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from types import ModuleType

from hypothesis import strategies as st

MUTATIONS = (
    "flip a bit",
    "replace a byte",
    "insert a byte",
    "delete a byte",
    "truncate",
    "repeat a slice",
    "append junk",
)

LEAK_WINDOW = 8
"""Shorter runs than this turn up in any sentence by chance."""

_SHORT_NUMBER = re.compile(r"(?<![0-9A-F])[0-9A-F]{1,5}(?![0-9A-F])")
"""A length, a count or a status word (`6A82`) the message states: its own number, not the input's text."""


@functools.cache
def own_words(*modules: ModuleType) -> tuple[str, ...]:
    """Every string literal of 4 characters or more in `modules` (f-strings' fixed parts included): the words a
    parser's messages are made of.

    Hypothesis feeds a test the string constants it finds in the code under test, so an input that spells part
    of a message ("the file's body is not ...") is bound to turn up in a long run; the message saying its own
    words is not a leak.
    """
    words = set()
    for module in modules:
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) >= 4:
                words.add(node.value)
    return tuple(sorted(words))


@st.composite
def mutated(draw: st.DrawFn, valid: bytes, *, most: int = 4) -> bytes:
    """`valid` after 1 to `most` mutations, each at a position hypothesis chooses (and shrinks towards 0)."""
    raw = bytearray(valid)
    for _ in range(draw(st.integers(1, most))):
        kind = draw(st.sampled_from(MUTATIONS))
        position = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip a bit" and raw:
            raw[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "replace a byte" and raw:
            raw[position] = draw(st.integers(0, 255))
        elif kind == "insert a byte":
            raw.insert(position, draw(st.integers(0, 255)))
        elif kind == "delete a byte" and raw:
            del raw[position]
        elif kind == "truncate":
            del raw[position:]
        elif kind == "repeat a slice":
            length = draw(st.integers(1, 64))
            raw[position:position] = raw[position : position + length]
        else:
            raw += draw(st.binary(min_size=1, max_size=32))
    return bytes(raw)


def leaked_pieces(message: str, *inputs: str | bytes, vocabulary: tuple[str, ...] = ()) -> list[str]:
    """Every run of LEAK_WINDOW characters of an input that `message` contains where the message is not saying
    its own words (bytes are read as Latin-1, so that any byte sequence has a text form, and as UTF-8).

    `vocabulary` is the parser's own words (its literals, see `own_words`, and the field names it reports): a
    run of the input found in the message only where those words, or a short number, cover every one of its
    characters is the message's text, not the input's.
    """
    covered = [False] * len(message)
    spans = [match.span() for match in _SHORT_NUMBER.finditer(message)]
    for word in vocabulary:
        spans += [(found.start(), found.start() + len(word)) for found in re.finditer(re.escape(word), message)]
    for start, end in spans:
        covered[start:end] = [True] * (end - start)
    found: list[str] = []
    for item in inputs:
        texts = [item] if isinstance(item, str) else [item.decode("latin-1"), item.decode("utf-8", "ignore")]
        for text in texts:
            for start in range(len(text) - LEAK_WINDOW + 1):
                piece = text[start : start + LEAK_WINDOW]
                if piece in found:
                    continue
                at = message.find(piece)
                while at >= 0:
                    if not all(covered[at : at + LEAK_WINDOW]):
                        found.append(piece)
                        break
                    at = message.find(piece, at + 1)
    return found
