"""Splitting texts for POST /tts-stream: named rules, then properties over generated texts."""

# CJK punctuation and typographic dashes are the test data here.
# ruff: noqa: RUF001

from __future__ import annotations

import bisect
import random
import re
import time
import unicodedata
from dataclasses import dataclass

import pytest

from airflow_provider_camb.speech.segments import MAX_SEGMENT_CHARS, MIN_SEGMENT_CHARS, split_text


def squeeze(text: str) -> str:
    return "".join(text.split())


def sentence(length: int, end: str = ".") -> str:
    """A sentence of exactly ``length`` characters: words of 4 letters, no inner sentence end."""
    body = " ".join(["word"] * (length // 5 + 1))[: length - len(end)].rstrip()
    body = body + "x" * (length - len(end) - len(body))
    return "W" + body[1:] + end


# --- the simple cases ---------------------------------------------------------------------------


def test_a_text_that_fits_is_one_segment():
    text = sentence(2999)
    assert split_text(text) == [text]


def test_a_text_of_exactly_max_chars_is_one_segment():
    text = sentence(MAX_SEGMENT_CHARS)
    assert split_text(f"  \n{text}\n  ") == [text]


def test_short_sentences_over_6001_characters_make_three_segments():
    # 599 sentences of 9 characters and one of 11, single spaces: 6001 characters. Whole sentences
    # fill at most 2999 characters, so two segments cannot hold them.
    text = " ".join(["Go there."] * 599 + ["Go further."])
    assert len(text) == 6001
    segments = split_text(text)
    assert len(segments) == 3
    assert all(len(s) <= MAX_SEGMENT_CHARS for s in segments)


@pytest.mark.parametrize("text", ["", "   ", "ab", " \n x \t ", "a\u2029"])
def test_a_text_under_three_characters_is_rejected_with_its_length(text):
    with pytest.raises(
        ValueError, match=r"needs at least 3 characters besides surrounding whitespace, got \d"
    ):
        split_text(text)


def test_limits_without_room_for_rebalancing_are_rejected():
    with pytest.raises(ValueError, match="max_chars >= 4 \\* min_chars"):
        split_text("some text here", max_chars=10, min_chars=3)


def test_whitespace_runs_are_normalised_and_segments_stripped():
    text = "  One  two\tthree.\r\n\r\n\r\nFour\u00a0five. \n Six\u2028seven.\u2029Eight.  "
    assert split_text(text) == ["One two three.\n\nFour five.\nSix\nseven.\n\nEight."]


# --- where cuts go ----------------------------------------------------------------------------


def test_a_sentence_that_fits_is_never_cut():
    long = sentence(35)
    text = f"Tiny one. {long} Another tiny one."
    segments = split_text(text, max_chars=40)
    assert long in segments
    assert squeeze(" ".join(segments)) == squeeze(text)


def test_sentences_are_packed_greedily_into_the_fewest_segments():
    text = " ".join(["Go there."] * 12)  # 119 characters
    segments = split_text(text, max_chars=40)
    assert segments == [" ".join(["Go there."] * 4)] * 3


def test_a_paragraph_break_is_preferred_when_the_count_allows_it():
    text = "Aaaa aaa. Bbbb bbb.\n\nCccc ccc. Dddd ddd. Eeee eee."
    # Greedy would end the first segment after "Cccc ccc."; the paragraph break costs no call.
    assert split_text(text, max_chars=40) == ["Aaaa aaa. Bbbb bbb.", "Cccc ccc. Dddd ddd. Eeee eee."]


def test_a_line_break_is_preferred_to_a_sentence_end():
    text = "Aaaa aaa. Bbbb bbb.\nCccc ccc. Dddd ddd. Eeee eee."
    assert split_text(text, max_chars=40) == ["Aaaa aaa. Bbbb bbb.", "Cccc ccc. Dddd ddd. Eeee eee."]


def test_a_better_boundary_never_costs_an_extra_segment():
    text = "Aa.\n\nBbbb bbbb bbbb. Cccc cccc cccc. Dddd dddd dddd. Eeee eeee."
    segments = split_text(text, max_chars=40)
    assert len(segments) == 2
    assert segments[0].startswith("Aa.\n\nBbbb")


def test_an_oversize_sentence_is_cut_at_clauses():
    text = "First part of it, second part of it; third part: and the end of it all."
    assert split_text(text, max_chars=40) == [
        "First part of it, second part of it;",
        "third part: and the end of it all.",
    ]


def test_an_oversize_clause_is_cut_between_words():
    text = "one two three four five six seven eight nine ten eleven twelve thirteen."
    segments = split_text(text, max_chars=40)
    assert segments == ["one two three four five six seven eight", "nine ten eleven twelve thirteen."]


def test_a_spaced_dash_is_a_clause_boundary_but_a_hyphen_is_not():
    text = "aaaa bbbb cccc – dddd eeee-ffff gggg-hhhh iiii-jjjj kkkk."
    assert split_text(text, max_chars=40) == ["aaaa bbbb cccc –", "dddd eeee-ffff gggg-hhhh iiii-jjjj kkkk."]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    text = 'He said "stop now." Then they all left. "Why?" (She asked twice.) Fine then.'
    segments = split_text(text, max_chars=40)
    assert segments == ['He said "stop now." Then they all left.', '"Why?" (She asked twice.) Fine then.']


def test_marks_without_a_space_after_them_end_no_sentence():
    inner = "Pi is 3.14, see v1.2.3 or a?b or e.g.x."
    # Were "3." or "a?" sentence ends, packing would fill the first segment up to one of them.
    assert split_text(f"Go now. {inner}", max_chars=40) == ["Go now.", inner]


def test_cjk_text_is_cut_at_sentence_marks_without_spaces():
    text = "今日は天気がいいです。散歩に行きましょう！どこへ行きますか？公園です。"
    segments = split_text(text, max_chars=21)
    assert segments == ["今日は天気がいいです。散歩に行きましょう！", "どこへ行きますか？公園です。"]


def test_an_oversize_cjk_sentence_is_cut_at_its_clause_marks():
    text = "我们今天去了公园、看了很多花、吃了午饭，然后回家了，晚上又看了电影。"
    segments = split_text(text, max_chars=20)
    assert segments == ["我们今天去了公园、看了很多花、吃了午饭，", "然后回家了，晚上又看了电影。"]


def test_a_word_longer_than_max_chars_is_cut_into_even_pieces():
    word = "x" * 5000
    assert split_text(f"See {word} now.") == [f"See {'x' * 2500}", f"{'x' * 2500} now."]


def test_a_cjk_run_without_punctuation_is_cut_at_max_chars():
    segments = split_text("漢" * 6000)
    assert segments == ["漢" * 3000, "漢" * 3000]


@pytest.mark.parametrize(
    "grapheme",
    [
        "e\u0301",  # a combining acute accent
        "a\u0301\u0323\u0308",  # three combining marks
        "\U0001f44d\U0001f3fd",  # thumbs up, skin tone
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a ZWJ family
        "\U0001f1ef\U0001f1f5",  # a flag: two regional indicators
        "\ud83d\ude00",  # a surrogate pair, as text decoded with surrogatepass holds it
        "\u0915\u094d\u0937\u093f",  # Devanagari conjunct with a virama and a spacing vowel sign
        "\u1100\u1161\u11a8",  # a Hangul syllable in conjoining jamo
    ],
)
def test_a_hard_cut_never_splits_a_grapheme(grapheme):
    text = grapheme * (100 // len(grapheme) + 1)
    segments = split_text(text, max_chars=20)
    assert "".join(segments) == text
    for segment in segments:
        assert len(segment) <= 20
        assert segment == grapheme * (len(segment) // len(grapheme))


# --- short leftovers ------------------------------------------------------------------------


def test_a_short_last_fragment_joins_the_previous_segment():
    segments = split_text(sentence(30) + " " + "x" * 25 + " ab", max_chars=40)
    assert segments == [sentence(30), "x" * 25 + " ab"]


def test_a_short_first_fragment_joins_the_next_segment():
    segments = split_text("Ok " + "x" * 30 + " " + "y" * 30, max_chars=40)
    assert segments == ["Ok " + "x" * 30, "y" * 30]


def test_a_short_fragment_that_cannot_join_is_rebalanced_at_a_word():
    long = sentence(2999)
    segments = split_text(f"{long}\n\nOK")
    last_space = long.rindex(" ")
    assert segments == [long[:last_space], long[last_space + 1 :] + "\n\nOK"]


def test_rebalancing_keeps_a_sentence_whole_when_it_can():
    long = sentence(2988)
    # "First one. <long>" fills 2999 characters: "OK" cannot join it, so the first sentence moves.
    assert split_text(f"First one. {long}\n\nOK") == ["First one.", f"{long}\n\nOK"]


def test_a_short_fragment_between_two_full_words_is_rebalanced_inside_a_word():
    segments = split_text("a" * 3000 + " ok " + "b" * 3000)
    assert all(3 <= len(s) <= 3000 for s in segments)
    assert squeeze(" ".join(segments)) == "a" * 3000 + "ok" + "b" * 3000


# --- properties over generated texts -------------------------------------------------------

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SPECIAL_WORDS = [
    "café",
    "naïve",
    "e\u0301le\u0300ve",
    "ñandu\u0301",
    "👍",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "🇯🇵",
    "❤\ufe0f",
]
CJK_CHARS = "日本語文章漢字中国人大学時間今天我们的是在有这个一不了和会見行来出上下"
CJK_MARKS = "。！？、，；："


@dataclass
class Generated:
    text: str
    units: list[str]  # sentences (or, for CJK, sentences without spaces), in order
    unit_gaps: list[int]  # normalised whitespace before each unit: 0, 1 or 2 characters


def latin_word(rng: random.Random) -> str:
    if rng.random() < 0.06:
        return rng.choice(SPECIAL_WORDS)
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 12)))


def latin_sentence(rng: random.Random, oversize: bool = True) -> str:
    roll = rng.random() if oversize else 1.0
    if roll < 0.04:
        count, commas = rng.randint(450, 1100), rng.random() < 0.5  # beyond 3000 characters
    elif roll < 0.06:
        count, commas = rng.randint(380, 480), True  # close to 3000 characters
    else:
        count, commas = rng.randint(1, 30), True
    words = [latin_word(rng) for _ in range(count)]
    if oversize and rng.random() < 0.02:
        words.insert(rng.randrange(len(words) + 1), "x" * 5000)
    if oversize and rng.random() < 0.02:
        words.insert(rng.randrange(len(words) + 1), "https://example.com/" + "q" * 3100)
    parts = []
    for word in words[:-1]:
        if commas and rng.random() < 0.1:
            word += rng.choice([",", ";", ":"])
        parts.append(word)
        if commas and rng.random() < 0.02:
            parts.append(rng.choice(["–", "—"]))
    end = rng.choice([".", ".", ".", "!", "?", "…", "?!"]) + rng.choice(["", "", "", '"', ")", "”"])
    parts.append(words[-1] + end)
    text = " ".join(parts)
    return text if len(text) >= 3 else text + "aaa"[: 3 - len(text)] + "."


def cjk_sentence(rng: random.Random, oversize: bool = True) -> str:
    roll = rng.random() if oversize else 1.0
    length = rng.randint(3500, 7000) if roll < 0.03 else rng.randint(3, 80)
    clause_marks = roll >= 0.015  # some oversize sentences have no mark at all
    chars = []
    for _ in range(length):
        chars.append(rng.choice(CJK_CHARS))
        if clause_marks and rng.random() < 0.08:
            chars.append(rng.choice("、，；："))
    return "".join(chars).lstrip("、，；：") + rng.choice("。！？")


def generate(rng: random.Random, style: str, oversize: bool = True) -> Generated:
    units: list[str] = []
    gaps: list[int] = []
    pieces: list[str] = []
    for paragraph_index in range(rng.randint(1, 12)):
        if paragraph_index:
            gap = rng.choice(["\n\n", "\r\n\r\n", "\n \n\n", "\n"])
            pieces.append(gap)
            gaps.append(1 if gap == "\n" else 2)
        cjk = style == "cjk" or (style == "mixed" and rng.random() < 0.4)
        for sentence_index in range(rng.randint(1, 10)):
            unit = cjk_sentence(rng, oversize) if cjk else latin_sentence(rng, oversize)
            if sentence_index:
                gap = "" if cjk else rng.choice([" ", " ", " ", "  ", "\t"])
                pieces.append(gap)
                gaps.append(len(gap) and 1)
            elif not paragraph_index:
                gaps.append(0)
            pieces.append(unit)
            units.append(unit)
    return Generated("".join(pieces), units, gaps)


def words_of(text: str) -> list[tuple[int, int]]:
    """Squeezed spans of the words no cut may enter: tokens between spaces, split after CJK marks."""
    spans = []
    position = 0
    for token in text.split():
        for word in re.findall(rf"[^{CJK_MARKS}]*[{CJK_MARKS}]+|[^{CJK_MARKS}]+", token):
            spans.append((position, position + len(word)))
            position += len(word)
    return spans


def check_segments(generated: Generated, segments: list[str], max_chars: int = MAX_SEGMENT_CHARS) -> None:
    text = generated.text
    for segment in segments:
        assert MIN_SEGMENT_CHARS <= len(segment) <= max_chars
        assert segment == segment.strip()
    # Nothing lost, nothing duplicated, order kept.
    assert "".join(squeeze(s) for s in segments) == squeeze(text)

    starts = []
    position = 0
    for segment in segments:
        starts.append(position)
        position += len(squeeze(segment))
    ends = [*starts[1:], position]

    def inside_one_segment(start: int, end: int) -> bool:
        index = bisect.bisect_right(starts, start) - 1
        return end <= ends[index]

    for start, end in words_of(text):
        if end - start <= max_chars:
            assert inside_one_segment(start, end), squeeze(text)[start:end]

    position = 0
    all_fit = True
    for unit in generated.units:
        length = len(squeeze(unit))
        if len(" ".join(unit.split())) <= max_chars:
            assert inside_one_segment(position, position + length), unit
        else:
            all_fit = False
        position += length

    if all_fit:
        # Fewest segments: the greedy count over whole sentences, computed independently.
        count, used = 0, None
        for unit, gap in zip(generated.units, generated.unit_gaps, strict=True):
            length = len(" ".join(unit.split()))
            if used is not None and used + gap + length <= max_chars:
                used += gap + length
            else:
                count, used = count + 1, length
        assert len(segments) == count


@pytest.mark.parametrize("style", ["latin", "cjk", "mixed"])
def test_generated_texts_keep_every_rule(style):
    rng = random.Random(f"text-segments-{style}")
    for _ in range(70):
        generated = generate(rng, style)
        check_segments(generated, split_text(generated.text))


def test_generated_texts_of_fitting_sentences_take_the_fewest_segments():
    rng = random.Random("text-segments-fitting")
    for _ in range(60):
        generated = generate(rng, rng.choice(["latin", "cjk", "mixed"]), oversize=False)
        check_segments(generated, split_text(generated.text))


def test_generated_texts_keep_every_rule_with_small_limits():
    rng = random.Random("text-segments-small")
    for _ in range(100):
        generated = generate(rng, rng.choice(["latin", "cjk", "mixed"]))
        check_segments(generated, split_text(generated.text, max_chars=120), max_chars=120)


def adversarial_text(rng: random.Random, max_chars: int) -> str:
    """Tiny fragments wedged between pieces that nearly fill a segment, in every arrangement."""
    pieces = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.3:
            pieces.append(rng.choice(["a", "ok", "x.", "。", "a,", "–", "👍", "e\u0301"]))
        elif kind < 0.55:
            pieces.append(sentence(rng.randint(max_chars - 6, max_chars)))
        elif kind < 0.75:
            pieces.append("y" * rng.randint(max_chars - 6, 2 * max_chars + 3))
        else:
            pieces.append(
                " ".join(latin_word(rng) for _ in range(rng.randint(1, 30))) + rng.choice([".", ",", ""])
            )
        pieces.append(rng.choice([" ", "\n", "\n\n", ""]))
    return "".join(pieces)


def test_adversarial_texts_still_give_segments_within_limits():
    rng = random.Random("text-segments-adversarial")
    for _ in range(400):
        max_chars = rng.choice([12, 20, 40])
        text = adversarial_text(rng, max_chars)
        if len(text.strip()) < 3:
            continue
        segments = split_text(text, max_chars=max_chars)
        assert all(3 <= len(s) <= max_chars and s == s.strip() for s in segments), (text, segments)
        assert "".join(squeeze(s) for s in segments) == squeeze(text)


def test_no_segment_starts_with_a_combining_mark():
    rng = random.Random("text-segments-marks")
    for _ in range(30):
        text = "".join(
            rng.choice(["a", "e\u0301", "o\u0308\u0323", "👍🏽", "🇯🇵"])
            for _ in range(rng.randint(2000, 9000))
        )
        for segment in split_text(text):
            assert not unicodedata.combining(segment[0])
            assert ord(segment[0]) not in range(0x1F3FB, 0x1F400)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda chunk: chunk, id="prose"),
        pytest.param(lambda chunk: " ".join(chunk.replace(".", "").split()), id="one-sentence-of-words"),
        pytest.param(lambda chunk: "漢字" * (len(chunk) // 2), id="cjk-without-marks"),
        pytest.param(lambda chunk: "x" * len(chunk), id="one-word"),
    ],
)
def test_a_million_characters_split_in_well_under_two_seconds(build):
    rng = random.Random("text-segments-speed")
    chunk = " ".join(latin_sentence(rng) for _ in range(400))
    text = build(chunk) * (1_000_000 // len(chunk) + 1)
    started = time.perf_counter()
    segments = split_text(text)
    elapsed = time.perf_counter() - started
    assert len(text) >= 1_000_000
    assert elapsed < 2.0
    assert sum(len(squeeze(s)) for s in segments) == len(squeeze(text))
