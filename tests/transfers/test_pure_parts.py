"""The transfer's pure parts: names, extensions, input parsing, signed-URL expiry, progress."""

from __future__ import annotations

import pytest

from airflow_provider_camb.storage.naming import (
    InvalidFilenameTemplateError,
    choose_ext,
    is_inside,
    render_filename,
    validate_filename_template,
)
from airflow_provider_camb.transfers._download import (
    RetrySettings,
    describe_error,
    is_expired,
    url_expires_at,
)
from airflow_provider_camb.transfers._inputs import InvalidTransferInputError, parse_urls
from airflow_provider_camb.transfers._progress import ProgressReporter

# -- extensions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "content_type", "ext"),
    [
        ("https://s/files/1.flac?sig=x", None, "flac"),
        ("https://s/files/1.WAV", "audio/flac", "wav"),  # the URL path wins
        ("https://s/files/1", "audio/wav; charset=binary", "wav"),
        ("https://s/files/1", "audio/x-wav", "wav"),
        ("https://s/files/1", "application/octet-stream", "flac"),  # unknown -> flac
        ("https://s/files/1", None, "flac"),
        ("https://s/files/1.exe", "audio/mpeg", "mp3"),  # not an audio extension
        ("https://s/a/..%2F..%2Fetc%2Fpasswd", "audio/../../x", "flac"),
        ("https://s/a/x.fl%2Fac", None, "flac"),
        ("https://s/a/x.flac%2F..%2F..%2Fsh", None, "flac"),
        ("https://s/a/x.flac/", "audio/ogg", "ogg"),
        ("https://s/a/x.%2e%2e", None, "flac"),
    ],
)
def test_ext_comes_from_the_url_path_or_content_type_and_is_never_a_path(url, content_type, ext):
    assert choose_ext(url, content_type) == ext


def test_render_falls_back_to_flac_for_anything_but_a_known_extension():
    assert render_filename("{run_id}.{ext}", 7, "../../evil") == "7.flac"
    assert render_filename("tts/{run_id}/audio.{ext}", 7, "wav") == "tts/7/audio.wav"


# -- filename templates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{run_id}.{ext}{task}", "only use {run_id} and {ext}"),
        ("{run_id.__class__}", "only use {run_id} and {ext}"),
        ("{run_id:>10}.{ext}", "only use {run_id} and {ext}"),
        ("{run_id!r}.{ext}", "only use {run_id} and {ext}"),
        ("audio.{ext}", "must contain {run_id}"),
        ("../{run_id}.{ext}", "not a safe relative path"),
        ("/abs/{run_id}.{ext}", "not a safe relative path"),
        ("a//{run_id}.{ext}", "not a safe relative path"),
        (".{run_id}.{ext}", "not a safe relative path"),
        ("a\\{run_id}.{ext}", "not a safe relative path"),
        ("{run_id}.{ext", "malformed"),
        ("", "non-empty"),
    ],
)
def test_bad_filename_templates_are_refused_with_the_reason(template, message):
    with pytest.raises(InvalidFilenameTemplateError) as excinfo:
        validate_filename_template(template)
    assert message in str(excinfo.value)


def test_good_filename_templates_pass():
    for template in ("{run_id}.{ext}", "camb_{run_id}.{ext}", "day=2026-01-01/{run_id}.{ext}", "{run_id}"):
        assert validate_filename_template(template) == template


def test_is_inside_rejects_escapes():
    assert is_inside("/data/out", "/data/out/1.flac")
    assert is_inside("bucket/prefix", "bucket/prefix/a/1.flac")
    assert not is_inside("/data/out", "/data/out/../x.flac")
    assert not is_inside("/data/out", "/data/outside/x.flac")
    assert not is_inside("/data/out", "/data/out")


# -- urls ------------------------------------------------------------------------------------

URL = "https://store.example/files/1001.flac?expires=1&signature=abc"


@pytest.mark.parametrize(
    "value",
    [
        {"1001": URL},
        {1001: URL},
        [{"1001": URL}],  # a mapped upstream task
        [{"1001": URL}, {"1001": URL}],  # the same run twice, with the same URL
        '{"1001": "' + URL + '"}',  # JSON
        "{'1001': '" + URL + "'}",  # what Jinja renders a dict to
        "{1001: '" + URL + "'}",
    ],
)
def test_urls_accepts_the_bulk_map_in_every_shape(value):
    assert parse_urls(value) == {1001: URL}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"abc": URL}, "'abc' is not a run ID"),
        ({"0": URL}, "'0' is not a run ID"),
        ({"1001": "file:///etc/passwd"}, "only http(s) URLs"),
        ({"1001": "s3://bucket/key"}, "only http(s) URLs"),
        ({"1001": "https:///nohost"}, "has no host"),
        ({"1001": 42}, "expected a URL string"),
        ([{"1001": URL}, {"1001": "https://other.test/1001.flac"}], "run 1001 has two different URLs"),
        ("__import__('os').system('id')", "neither JSON nor a Python literal"),
        (["not a map"], "must be a mapping"),
        (42, "must be a mapping"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(value, message):
    with pytest.raises(InvalidTransferInputError) as excinfo:
        parse_urls(value)
    assert message in str(excinfo.value)
    assert "signature=abc" not in str(excinfo.value)


# -- signed URLs and errors ------------------------------------------------------------------


def test_url_expiry_is_read_from_the_common_signing_schemes():
    assert url_expires_at("https://h/x?expires=1700000000.5&signature=s") == 1700000000.5
    assert url_expires_at("https://h/x?Expires=1700000000&Signature=s") == 1700000000
    sigv4 = "https://b.s3.amazonaws.com/k?X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=s"
    assert url_expires_at(sigv4) == 1767225600 + 3600
    gcs = "https://storage.googleapis.com/b/k?X-Goog-Date=20260101T000000Z&X-Goog-Expires=60"
    assert url_expires_at(gcs) == 1767225600 + 60
    assert url_expires_at("https://h/x?foo=1") is None
    assert is_expired("https://h/x?expires=100", now=200)
    assert not is_expired("https://h/x?expires=1000", now=200)
    assert not is_expired("https://h/x", now=200)


def test_errors_are_described_without_the_signed_query():
    err = ConnectionError("Max retries exceeded with url: /files/1.flac?expires=1&signature=SECRET (x)")
    text = describe_error(err)
    assert "SECRET" not in text
    assert text.startswith("ConnectionError: ") and "/files/1.flac?…" in text


def test_retry_delay_honours_retry_after_and_backs_off_otherwise():
    settings = RetrySettings(backoff_initial=1.0, backoff_max=8.0)
    assert settings.delay(1, 2.5) == 2.5
    assert settings.delay(1, 10_000) == 120.0  # capped
    assert 1.0 <= settings.delay(1, None) <= 2.0
    assert 8.0 <= settings.delay(10, None) <= 9.0


# -- progress --------------------------------------------------------------------------------


def test_progress_logs_at_most_once_per_interval():
    now = [0.0]
    lines: list[str] = []
    progress = ProgressReporter(
        3, lambda msg, *args: lines.append(msg % args), interval=5.0, clock=lambda: now[0]
    )
    for _ in range(100):
        progress.add_bytes(1_000_000)
        now[0] += 0.125  # 100 chunks over 12.5 s
    progress.file_done()
    progress.file_done(skipped=True)
    assert len(lines) == 2
    assert lines[0] == "Progress: 0/3 files, 41.0 MB in 5.0 s, 8.2 MB/s"
    assert progress.summary() == "2/3 files (1 already there), 100.0 MB in 12.5 s, 8.0 MB/s"
