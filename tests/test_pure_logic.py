"""The small pure functions everything else leans on."""

from __future__ import annotations

import pytest

from airflow_provider_camb.hooks.retry_policy import parse_retry_after
from airflow_provider_camb.utils.redaction import redact_url, scrub_secret
from airflow_provider_camb.utils.run_ids import normalise_run_ids, parse_run_ids_text, plan_chunks


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(0, []), (1, [1]), (2, [2]), (5, [5]), (6, [3, 3]), (7, [4, 3]), (11, [4, 4, 3]), (16, [4, 4, 4, 4])],
)
def test_chunks_are_as_few_and_even_as_possible(count, sizes):
    chunks = plan_chunks(list(range(1, count + 1)))
    assert [len(c) for c in chunks] == sizes
    assert [i for c in chunks for i in c] == list(range(1, count + 1))


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("[1, 2, 3]", [1, 2, 3]),
        ("(3, 4)", [3, 4]),
        ("1,2,3", [1, 2, 3]),
        (" 4 5 ", [4, 5]),
        ("7", [7]),
        ("['8', '9']", [8, 9]),
    ],
)
def test_rendered_template_strings_become_run_ids(text, ids):
    assert normalise_run_ids(parse_run_ids_text(text)) == ids
    assert normalise_run_ids(text) == ids


def test_a_single_int_is_one_run_id():
    assert normalise_run_ids(42) == [42]


@pytest.mark.parametrize(
    ("header", "seconds"), [("5", 5.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("", None)]
)
def test_retry_after_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_http_date_is_relative_to_now():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://s3.test/a/b.flac?X-Amz-Signature=abc&X-Amz-Credential=k", "https://s3.test/a/b.flac?…"),
        ("https://user:pw@host.test:8443/x", "https://host.test:8443/x"),
        ("http://127.0.0.1:9/files/1.flac", "http://127.0.0.1:9/files/1.flac"),
    ],
)
def test_signed_urls_are_logged_without_secrets(url, shown):
    assert redact_url(url) == shown


def test_scrub_secret_removes_every_occurrence():
    assert scrub_secret("key k1 and k1", "k1") == "key *** and ***"
    assert scrub_secret("nothing", "") == "nothing"


@pytest.mark.parametrize(("attempt", "low"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (40, 30.0)])
def test_backoff_doubles_up_to_a_ceiling_plus_jitter(attempt, low):
    from airflow_provider_camb.hooks.retry_policy import backoff_seconds

    waits = [backoff_seconds(attempt) for _ in range(50)]
    assert all(low <= wait <= low + 1.0 for wait in waits)
    assert len(set(waits)) > 1, "jitter spreads the retries of many workers"


def test_backoff_follows_retry_after_but_caps_it():
    from airflow_provider_camb.hooks.retry_policy import MAX_RETRY_AFTER_SECONDS, backoff_seconds

    assert backoff_seconds(3, 7.5) == 7.5
    assert backoff_seconds(1, 86_400.0) == MAX_RETRY_AFTER_SECONDS


# -- the TTS request reads mappings as templates render them ------------------------------------


@pytest.mark.parametrize(
    "rendered",
    [
        {"speaking_rate": 1.1},
        '{"speaking_rate": 1.1}',  # JSON, e.g. from a Variable
        "{'speaking_rate': 1.1}",  # a dict rendered by a template without native rendering
    ],
)
def test_tts_request_takes_voice_settings_however_a_template_rendered_them(rendered):
    from airflow_provider_camb.speech.request import TTSStreamRequest

    request = TTSStreamRequest.create(voice_id="20298", voice_settings=rendered)

    assert request.voice_settings == {"speaking_rate": 1.1}


def test_tts_request_names_voice_settings_that_are_no_mapping():
    from airflow_provider_camb.speech.request import InvalidTTSRequestError, TTSStreamRequest

    with pytest.raises(InvalidTTSRequestError, match="voice_settings must be a mapping"):
        TTSStreamRequest.create(voice_id=20298, voice_settings="fast please")
