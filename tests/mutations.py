"""Structured mutations of a valid input, and the no-echo check, shared by the fuzz tests.

Random bytes rarely get past a parser's first check (a magic, a length, a status word); a valid input with a
few bytes flipped, cut, repeated or inserted reaches the checks behind it. `leaked_pieces` is how a test says
"the error message quotes none of what it was given": no run of 8 characters of the input appears in it.
"""

from __future__ import annotations

from hypothesis import strategies as st

MUTATIONS = ("flip a bit", "replace a byte", "insert a byte", "delete a byte", "truncate", "repeat a slice",
             "append junk")

LEAK_WINDOW = 8
"""Shorter runs than this turn up in any sentence by chance ("the card" is 8 characters: windows are compared
over the input's own text, so a fixed message would need to match the input, not the other way round)."""


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
    """Every run of LEAK_WINDOW characters of an input that `message` contains (bytes are read as Latin-1,
    so that any byte sequence has a text form, and as UTF-8 where they are UTF-8).

    `vocabulary` is the parser's own words (field names, a format's name): a message may name the field that
    is wrong even when the input spells that name too, so a run found in the vocabulary is not a leak.
    """
    in_message = {message[start : start + LEAK_WINDOW] for start in range(len(message) - LEAK_WINDOW + 1)}
    found: list[str] = []
    for item in inputs:
        texts = [item] if isinstance(item, str) else [item.decode("latin-1"), item.decode("utf-8", "ignore")]
        for text in texts:
            for start in range(len(text) - LEAK_WINDOW + 1):
                piece = text[start : start + LEAK_WINDOW]
                if piece in in_message and piece not in found and not any(piece in word for word in vocabulary):
                    found.append(piece)
    return found
