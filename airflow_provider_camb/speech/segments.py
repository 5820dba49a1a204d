"""Splitting long texts into segments that ``POST /tts-stream`` accepts. Pure functions: no Airflow, no I/O.

The endpoint takes 3 to 3000 characters per call. :func:`split_text` cuts a longer text into as
few segments as possible, at the most natural places it can find:

1. Every segment is a run of whole sentences whenever the sentences fit: a sentence of at most
   ``max_chars`` characters is never cut.
2. Among the ways to reach the fewest segments, cuts go to paragraph breaks first, then line
   breaks, then sentence ends.
3. Only a sentence longer than ``max_chars`` is cut inside: at clauses (``,`` ``;`` ``:``, a
   spaced dash, ``、`` ``，`` ...), then between words, and a "word" longer than ``max_chars`` (a
   URL, a CJK run without punctuation) at a character that starts a new grapheme.
4. A fragment shorter than ``min_chars`` is merged into a neighbour, or, when that would overflow,
   the two are rebalanced at the best boundary that keeps both within limits.

Whitespace is normalised first (a run holding a blank line becomes ``"\\n\\n"``, one holding a
line break ``"\\n"``, any other run one space): the API counts whitespace as characters, and
nothing audible is lost. Apart from that, the segments are the text itself, in order: no
character is dropped, duplicated or altered.
"""

# This module's job is to recognise CJK, Arabic and typographic punctuation, so its tables and
# comments name those characters as they are.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import re
import unicodedata

MAX_SEGMENT_CHARS = 3000
MIN_SEGMENT_CHARS = 3

# Boundary levels, best first. A cut at a lower number is preferred; pieces between boundaries
# of a level are only broken up further when they do not fit.
_PARAGRAPH = 0
_LINE = 1
_SENTENCE = 2
_CLAUSE = 3
_WORD = 4
_HARD = 5
_END_OF_TEXT = -1

# Closing quotes and brackets stay with the sentence or clause they close.
_CLOSERS = re.escape("\"')]}»›”’」』）】〉》〕〗〙〛＂＇］｝")
# Sentence ends that need whitespace after them (so "3.14", "e.g.x" and "a?b" are not ends).
_SPACED_SENTENCE_MARKS = re.escape(".!?…‽‼⁇⁈⁉؟۔।॥。！？｡．")
# CJK sentence marks need no space after them: CJK text has no spaces to wait for.
_CJK_SENTENCE_MARKS = re.escape("。！？｡")
_SPACED_CLAUSE_MARKS = re.escape(",;:،؛、，；：､")
_CJK_CLAUSE_MARKS = re.escape("、，；：､")
_DASHES = re.escape("-–—―")

# Where a CJK mark ends a piece: before anything but whitespace or more punctuation ("；。" is
# one ending, not a clause end followed by a one-character sentence).
_CJK_PIECE_END = rf"(?=[^\s{_SPACED_SENTENCE_MARKS}{_SPACED_CLAUSE_MARKS}])"

_LINE_BREAK_RUN = re.compile(r"\n\n?")
_SPACED_SENTENCE_END = re.compile(rf"[{_SPACED_SENTENCE_MARKS}]+[{_CLOSERS}]*(?= )")
_CJK_SENTENCE_END = re.compile(rf"[{_CJK_SENTENCE_MARKS}]+[{_CLOSERS}]*{_CJK_PIECE_END}")
_SPACED_CLAUSE_END = re.compile(rf"[{_SPACED_CLAUSE_MARKS}]+[{_CLOSERS}]*(?= )")
# A dash standing between spaces ("this – that"), never a hyphen inside a word.
_SPACED_DASH = re.compile(rf"(?<= )[{_DASHES}]{{1,2}}(?= )")
_CJK_CLAUSE_END = re.compile(rf"[{_CJK_CLAUSE_MARKS}]+[{_CLOSERS}]*{_CJK_PIECE_END}")
_WHITESPACE_RUN = re.compile(r"\s+")

# Whitespace normalisation. After it the only whitespace runs are " ", "\n" and "\n\n".
# Only what needs changing is matched: a match per ordinary space or newline would build a list
# of match objects as long as a book (the peak memory of splitting a million characters).
_LINE_BREAK_CHAR = re.compile(r"\r\n?|[\v\f\x1c\x1d\x1e\x85\u2028]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]{2,}|[^ \S\n]")
_BLANK_LINES = re.compile(r" ?\n(?: ?\n)+ ?")
_SINGLE_LINE_BREAK = re.compile(r" ?\n ?")

_ZERO_WIDTH_JOINER = 0x200D

# A boundary: text[cut_start:cut_end] is the whitespace between two pieces (empty after a CJK
# mark), and its level.
_Boundary = tuple[int, int, int]
_Span = tuple[int, int]


def split_text(
    text: str, *, max_chars: int = MAX_SEGMENT_CHARS, min_chars: int = MIN_SEGMENT_CHARS
) -> list[str]:
    """Split ``text`` into segments of ``min_chars`` to ``max_chars`` characters, in order.

    A text that fits is one segment. Otherwise the result has the fewest segments that keep every
    sentence of at most ``max_chars`` characters whole, with cuts at paragraph breaks, line breaks
    and sentence ends where there is a choice; see the module docstring for the whole policy.
    Removing all whitespace from the joined segments gives the text without whitespace.

    :param text: the text to speak.
    :param max_chars: the most characters a segment may have.
    :param min_chars: the fewest characters a segment may have.
    :raises ValueError: if the text has fewer than ``min_chars`` characters besides surrounding
        whitespace, or if the limits are unusable.
    """
    if min_chars < 1 or max_chars < 4 * min_chars:
        raise ValueError(
            f"Segment limits need 1 <= min_chars and max_chars >= 4 * min_chars, "
            f"got min_chars={min_chars}, max_chars={max_chars}."
        )
    text = _normalise_whitespace(text)
    if len(text) < min_chars:
        raise ValueError(
            f"A text to speak needs at least {min_chars} characters besides surrounding whitespace, "
            f"got {len(text)}: {text!r}."
        )
    if len(text) <= max_chars:
        return [text]
    starts, ends, levels = _leaves(text, max_chars)
    spans = _pack(starts, ends, levels, max_chars, min_chars)
    spans = _merge_short(text, spans, max_chars, min_chars)
    return [text[start:end] for start, end in spans]


def _normalise_whitespace(text: str) -> str:
    text = _LINE_BREAK_CHAR.sub("\n", text.replace("\u2029", "\n\n"))
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return _SINGLE_LINE_BREAK.sub("\n", text).strip()


def _sentence_boundaries(text: str, start: int, end: int) -> list[_Boundary]:
    found: list[_Boundary] = [
        (m.start(), m.end(), _PARAGRAPH if m.end() - m.start() == 2 else _LINE)
        for m in _LINE_BREAK_RUN.finditer(text, start, end)
    ]
    found.extend((m.end(), m.end() + 1, _SENTENCE) for m in _SPACED_SENTENCE_END.finditer(text, start, end))
    found.extend((m.end(), m.end(), _SENTENCE) for m in _CJK_SENTENCE_END.finditer(text, start, end))
    found.sort()
    return found


def _clause_boundaries(text: str, start: int, end: int) -> list[_Boundary]:
    found: list[_Boundary] = [
        (m.end(), m.end() + 1, _CLAUSE) for m in _SPACED_CLAUSE_END.finditer(text, start, end)
    ]
    found.extend((m.end(), m.end() + 1, _CLAUSE) for m in _SPACED_DASH.finditer(text, start, end))
    found.extend((m.end(), m.end(), _CLAUSE) for m in _CJK_CLAUSE_END.finditer(text, start, end))
    found.sort()
    return found


def _word_boundaries(text: str, start: int, end: int) -> list[_Boundary]:
    return [(m.start(), m.end(), _WORD) for m in _WHITESPACE_RUN.finditer(text, start, end)]


def _all_boundaries(text: str, start: int, end: int) -> list[_Boundary]:
    best: dict[int, _Boundary] = {}
    for found in (
        _word_boundaries(text, start, end),
        _clause_boundaries(text, start, end),
        _sentence_boundaries(text, start, end),
    ):
        for boundary in found:
            known = best.get(boundary[0])
            if known is None or boundary[2] < known[2]:
                best[boundary[0]] = boundary
    return sorted(best.values())


def _pieces(start: int, end: int, lead: int, boundaries: list[_Boundary]) -> list[tuple[int, int, int]]:
    """The pieces between ``boundaries`` as ``(start, end, level of the boundary before it)``."""
    pieces = []
    previous_end, level = start, lead
    for cut_start, cut_end, cut_level in boundaries:
        if cut_start > previous_end:
            pieces.append((previous_end, cut_start, level))
            level = cut_level
        else:
            level = min(level, cut_level)
        previous_end = cut_end
    pieces.append((previous_end, end, level))
    return pieces


def _leaves(text: str, max_chars: int) -> tuple[list[int], list[int], list[int]]:
    """Cut ``text`` into the atoms packing works with: whole sentences, or finer where one is too long.

    :return: starts, ends, and the level of the boundary before each atom.
    """
    starts: list[int] = []
    ends: list[int] = []
    levels: list[int] = []

    def emit(start: int, end: int, level: int) -> None:
        starts.append(start)
        ends.append(end)
        levels.append(level)

    for s1, e1, l1 in _pieces(0, len(text), _PARAGRAPH, _sentence_boundaries(text, 0, len(text))):
        if e1 - s1 <= max_chars:
            emit(s1, e1, l1)
            continue
        for s2, e2, l2 in _pieces(s1, e1, l1, _clause_boundaries(text, s1, e1)):
            if e2 - s2 <= max_chars:
                emit(s2, e2, l2)
                continue
            for s3, e3, l3 in _pieces(s2, e2, l2, _word_boundaries(text, s2, e2)):
                if e3 - s3 <= max_chars:
                    emit(s3, e3, l3)
                    continue
                level = l3
                for cut in [*_hard_cuts(text, s3, e3, max_chars), e3]:
                    emit(s3, cut, level)
                    s3, level = cut, _HARD
    return starts, ends, levels


def _hard_cuts(text: str, start: int, end: int, max_chars: int) -> list[int]:
    """Where to cut a word longer than ``max_chars``: into near-equal pieces, between graphemes."""
    length = end - start
    count = -(-length // max_chars)
    # With exactly full pieces there is no slack to step around a combining sequence: one more
    # piece gives plenty. Only text made of marks alone ends up cut wherever it must.
    for strict in (True, False):
        cuts: list[int] = []
        previous = start
        for index in range(1, count):
            low = max(previous + 1, end - max_chars * (count - index))
            high = min(previous + max_chars, end - 1)
            ideal = min(max(start + length * index // count, low), high)
            cut = _nearest_safe_cut(text, ideal, low, high)
            if cut is None:
                if strict:
                    break
                cut = ideal
            cuts.append(cut)
            previous = cut
        else:
            return cuts
        count += 1
    raise AssertionError("unreachable: the non-strict pass always returns")  # pragma: no cover


def _nearest_safe_cut(text: str, ideal: int, low: int, high: int) -> int | None:
    for distance in range(max(ideal - low, high - ideal) + 1):
        for position in (ideal - distance, ideal + distance):
            if low <= position <= high and _can_cut_before(text, position):
                return position
    return None


def _continues_grapheme(char: str) -> bool:
    """Whether ``char`` belongs to the grapheme before it (a mark, a joiner, a modifier...)."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Mc", "Me"):
        return True
    code = ord(char)
    return (
        code == _ZERO_WIDTH_JOINER
        or 0xDC00 <= code <= 0xDFFF  # the second half of a surrogate pair
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin tone
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequence (subdivision flags)
        or 0x1160 <= code <= 0x11FF  # Hangul medial vowel or final consonant jamo
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _can_cut_before(text: str, position: int) -> bool:
    """Whether a cut between ``text[position - 1]`` and ``text[position]`` splits no grapheme."""
    before, char = text[position - 1], text[position]
    if _continues_grapheme(char):
        return False
    code = ord(before)
    # After a joiner, the first half of a surrogate pair, or a virama (combining class 9: it
    # fuses the consonants around it into one conjunct, as in Devanagari "क्ष").
    if code == _ZERO_WIDTH_JOINER or 0xD800 <= code <= 0xDBFF or unicodedata.combining(before) == 9:
        return False
    if _is_regional_indicator(before) and _is_regional_indicator(char):
        # Flags are pairs of regional indicators: cut only after an even number of them.
        run = 0
        while position - run - 1 >= 0 and _is_regional_indicator(text[position - run - 1]):
            run += 1
        return run % 2 == 0
    return True


def _pack(
    starts: list[int], ends: list[int], levels: list[int], max_chars: int, min_chars: int
) -> list[_Span]:
    """Group consecutive atoms into the fewest segments, choosing the best boundaries among ties.

    Greedy packing (each segment as long as it can be) gives the fewest segments; ``fewest[i]``
    is that count for the atoms from ``i`` on, which never grows as ``i`` grows. So from atom
    ``i`` any end ``j`` with ``fewest[j] == fewest[farthest reach]`` still gives the fewest
    segments overall, and among those the best boundary wins: a paragraph break rather than a
    sentence end in the middle of a paragraph. A segment under ``min_chars`` is avoided if a tie
    allows it.
    """
    count = len(starts)
    reach = [0] * count
    j = 0
    for i in range(count):
        j = max(j, i + 1)
        limit = starts[i] + max_chars
        while j < count and ends[j] <= limit:
            j += 1
        reach[i] = j
    fewest = [0] * (count + 1)
    for i in range(count - 1, -1, -1):
        fewest[i] = fewest[reach[i]] + 1

    spans: list[_Span] = []
    i = 0
    while i < count:
        farthest = reach[i]
        target = fewest[farthest]
        best_end, best_key = farthest, (False, 0)
        j = farthest
        while j > i and fewest[j] == target:
            key = (ends[j - 1] - starts[i] >= min_chars, -(levels[j] if j < count else _END_OF_TEXT))
            if j == farthest or key > best_key:
                best_end, best_key = j, key
            j -= 1
        spans.append((starts[i], ends[best_end - 1]))
        i = best_end
    return spans


def _merge_short(text: str, spans: list[_Span], max_chars: int, min_chars: int) -> list[_Span]:
    """Merge every segment under ``min_chars`` into a neighbour, rebalancing when it overflows."""
    pending = list(spans)
    done: list[_Span] = []
    for index, (start, end) in enumerate(pending):
        if end - start >= min_chars:
            done.append((start, end))
        elif done and end - done[-1][0] <= max_chars:
            done[-1] = (done[-1][0], end)
        elif index + 1 < len(pending) and pending[index + 1][1] - start <= max_chars:
            pending[index + 1] = (start, pending[index + 1][1])
        elif done:
            left, right = _rebalance(text, done[-1][0], end, max_chars, min_chars, short_at_end=True)
            done[-1:] = [left, right]
        else:
            # The text has at least min_chars characters, so a short first segment has a next one.
            left, right = _rebalance(
                text, start, pending[index + 1][1], max_chars, min_chars, short_at_end=False
            )
            done.append(left)
            pending[index + 1] = right
    return done


def _rebalance(
    text: str, start: int, end: int, max_chars: int, min_chars: int, *, short_at_end: bool
) -> tuple[_Span, _Span]:
    """Cut ``text[start:end]`` (a segment plus a short neighbour) in two that both fit.

    The best boundary wins (a paragraph break before a sentence end before a word), and among
    equals the one moving the fewest characters to the short side.
    """

    def fits(length: int) -> bool:
        return min_chars <= length <= max_chars

    best: tuple[tuple[int, int], int, int] | None = None
    for cut_start, cut_end, level in _all_boundaries(text, start, end):
        if fits(cut_start - start) and fits(end - cut_end):
            moved = end - cut_end if short_at_end else cut_start - start
            if best is None or (level, moved) < best[0]:
                best = ((level, moved), cut_start, cut_end)
    if best is not None:
        return (start, best[1]), (best[2], end)

    # No boundary leaves both sides long enough: the neighbour is one long word. Cut inside it.
    low = max(start + min_chars, end - max_chars)
    high = min(start + max_chars, end - min_chars)
    positions = range(high, low - 1, -1) if short_at_end else range(low, high + 1)
    inside_words = [p for p in positions if not text[p - 1].isspace() and not text[p].isspace()]
    # Rather "wor" + "d. ok" than "word" + ". ok": punctuation stays with the letters before it.
    for position in sorted(inside_words, key=lambda p: unicodedata.category(text[p]).startswith("P")):
        if _can_cut_before(text, position):
            return (start, position), (position, end)
    if inside_words:
        return (start, inside_words[0]), (inside_words[0], end)
    raise AssertionError(  # pragma: no cover - max_chars >= 4 * min_chars leaves room
        f"no cut keeps both sides of a {end - start}-character span within {min_chars}..{max_chars}"
    )
