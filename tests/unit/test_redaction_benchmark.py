"""The redaction benchmark's external corpus (presidio-evaluator's generator), its baselines as
configured (Presidio pattern-only with context, detect-secrets) and the scoring rules they rely on."""

from __future__ import annotations

import base64
import json
import re
import socket

import pytest

from pipeline.benchmarks.external_corpus import (
    SECRET_TEMPLATES,
    SecretProvider,
    external_corpus,
    planted_values,
    usable_templates,
)
from pipeline.benchmarks.redact_scoring import EvalMessage, RedactorOutput, evaluate
from pipeline.benchmarks.secret_scanner_baseline import findings_to_spans, scan_texts


@pytest.fixture
def offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)


# -- the external corpus -------------------------------------------------------------------------


def _spans(text: str, *tokens: tuple[str, str]) -> list[tuple[str, str, int, int]]:
    return [(token, value, text.index(value), text.index(value) + len(value)) for token, value in tokens]


def test_planted_values_merge_adjacent_address_parts_and_drop_context():
    text = "Send it to 12 Elm Road, Flat 3, Leeds, UK please, Anna Berg"
    spans = _spans(text, ("building_number", "12"), ("street_name", "Elm Road"), ("secondary_address", "Flat 3"),
                   ("city", "Leeds"), ("country", "UK"), ("name", "Anna Berg"))
    assert planted_values(text, spans) == (("STREET_ADDRESS", "12 Elm Road, Flat 3"), ("PERSON", "Anna Berg"))


def test_planted_values_keep_address_parts_apart_across_other_words():
    text = "1 Main St\nSpringfield 62701"
    spans = _spans(text, ("street_address", "1 Main St"), ("city", "Springfield"), ("postcode", "62701"))
    assert planted_values(text, spans) == (("STREET_ADDRESS", "1 Main St"), ("STREET_ADDRESS", "62701"))


def test_usable_templates_drop_tokens_the_locale_cannot_fill():
    assert usable_templates("de_DE", ["Hi {{name}}", "{{no_such_provider}} here"], []) == ["Hi {{name}}"]


def test_secret_provider_values_have_their_vendors_shapes():
    from faker import Faker

    fake = Faker("en_US")
    fake.add_provider(SecretProvider)
    fake.seed_instance(3)
    assert re.fullmatch(r"AKIA[0-9A-Z]{16}", fake.aws_access_key_id())
    assert re.fullmatch(r"gh[pos]_[A-Za-z0-9]{36}", fake.github_token())
    header, claims, signature = fake.jwt().split(".")
    assert json.loads(base64.urlsafe_b64decode(claims + "==")).keys() >= {"sub", "iat", "exp"}
    assert header.startswith("eyJ") and len(base64.urlsafe_b64decode(signature + "==")) == 32
    assert re.fullmatch(r"sk-proj-[\w-]+T3BlbkFJ\w{74}", fake.openai_key())
    key = fake.private_key().splitlines()
    assert re.fullmatch(r"-----BEGIN (RSA |EC |OPENSSH )?PRIVATE KEY-----", key[0])
    assert key[-1] == key[0].replace("BEGIN", "END") and all(len(line) <= 64 for line in key[1:-1])
    assert not re.search(r"[@/:#?]", fake.url_password())  # would end the user:password part of a URL


@pytest.fixture(scope="module")
def small_corpus():
    return external_corpus(per_locale=10, secrets=60, seed=5, locales=("de_DE", "fr_FR"))


def test_external_corpus_is_offline_and_deterministic(offline):
    import random

    import presidio_evaluator.data_generator  # noqa: F401 - importing it draws from random, once

    before = random.getstate()
    first = external_corpus(per_locale=3, secrets=5, seed=11, locales=("it_IT",))
    assert random.getstate() == before  # the package's global seeding is undone
    assert first == external_corpus(per_locale=3, secrets=5, seed=11, locales=("it_IT",))
    assert first != external_corpus(per_locale=3, secrets=5, seed=12, locales=("it_IT",))


def test_external_corpus_plants_every_value_verbatim_in_its_own_message(small_corpus):
    assert len(small_corpus) == 2 * (10 + 10) + 60
    assert len({m.group for m in small_corpus}) == len(small_corpus)  # one message, one unit
    for m in small_corpus:
        for _, value in m.planted:
            assert value in m.text, (value, m.text)
        assert "None" not in m.text  # the package's country() bug is worked around


def test_external_corpus_covers_pii_and_secret_types_in_the_locales_formats(small_corpus):
    planted = {t for m in small_corpus for t, _ in m.planted}
    assert {"EMAIL", "PHONE", "IBAN", "PERSON", "API_KEY", "TOKEN", "PASSWORD", "PRIVATE_KEY"} <= planted
    german_ibans = [v for m in small_corpus if "/de_DE/" in m.group for t, v in m.planted if t == "IBAN"]
    assert german_ibans and all(v.startswith("DE") for v in german_ibans)
    assert {m.kind for m in small_corpus} == {"prose", "format", "secret"}
    assert len(SECRET_TEMPLATES) >= 20


# -- scoring -------------------------------------------------------------------------------------


def test_a_value_is_only_looked_for_as_a_whole_word():
    text = "Al moved to Alabama"
    # The detector covers the name but not the "Al" inside "Alabama": still found.
    ev = evaluate([EvalMessage(text, (("PERSON", "Al"),))], [RedactorOutput("<P> moved to Alabama", [(0, 2, "P")])])
    assert ev.by_type["PERSON"].found == 1


def test_flagged_counts_partial_cover_that_recall_does_not():
    text = "key -----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----"
    value = text[4:]
    out = RedactorOutput(text.replace("BEGIN RSA PRIVATE KEY", "<K>"), [(9, 30, "PRIVATE_KEY")])
    ev = evaluate([EvalMessage(text, (("PRIVATE_KEY", value),))], [out])
    assert ev.by_type["PRIVATE_KEY"].flagged == 1 and ev.by_type["PRIVATE_KEY"].found == 0
    assert ev.secrets_planted == 1 and ev.secrets_surviving == 1


# -- detect-secrets ------------------------------------------------------------------------------


def test_scanner_findings_widen_to_the_whole_token():
    line = "remote https://bob:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x.git"
    [(start, end, etype)] = findings_to_spans(line, [("GitHub Token", "ghp")])
    assert line[start:end].startswith("bob:ghp_abcdef") is False
    assert line[start:end] == "ghp_abcdefghijklmnopqrstuvwxyz0123456789" and etype == "API_KEY"


def test_scan_texts_maps_findings_back_to_each_message_and_line():
    texts = ["nothing here", "first line\nexport KEY=AKIAIOSFODNN7EXAMPLE", "-----BEGIN RSA PRIVATE KEY-----\nMIIE"]
    outs = scan_texts(texts)
    assert outs[0].spans == []
    [(start, end, etype)] = outs[1].spans
    assert texts[1][start:end] == "AKIAIOSFODNN7EXAMPLE" and etype == "API_KEY"
    assert "AKIAIOSFODNN7EXAMPLE" not in outs[1].text
    # A private key is reported by its header line: the body stays.
    assert {t for *_, t in outs[2].spans} == {"PRIVATE_KEY"} and "MIIE" in outs[2].text


def test_scan_texts_reports_a_repeated_value_in_every_message():
    key = "AKIAIOSFODNN7EXAMPLE"
    outs = scan_texts([f"export AWS_ACCESS_KEY_ID={key}", "unrelated", f"again {key}"])
    assert key not in outs[0].text and key not in outs[2].text


# -- Presidio as configured ----------------------------------------------------------------------


def test_presidio_context_words_raise_scores(offline):
    from pipeline.benchmarks.presidio_baseline import presidio_analyze

    def phone_score(text: str) -> float:
        return max(r.score for r in presidio_analyze(text) if r.entity_type == "PHONE_NUMBER")

    # Needs lemmas: on a blank pipeline without the lemmatizer both would score 0.4.
    assert phone_score("my phone number is 212 555 0199") > phone_score("the order is 212 555 0199")


def test_presidio_reports_only_the_compared_entities():
    from pipeline.benchmarks.presidio_baseline import COMPARED_ENTITIES, presidio_analyze

    text = "Mr John Smith visited https://example.com on 2026-03-02, uuid 123e4567-e89b-12d3-a456-426614174000"
    assert {r.entity_type for r in presidio_analyze(text)} <= set(COMPARED_ENTITIES)
    assert not presidio_analyze(text)


def test_presidio_conversation_spans_are_in_each_messages_coordinates():
    from pipeline.benchmarks.presidio_baseline import presidio_redact_conversation

    texts = ["call me", "at 212 555 0199 or mail a@example.com"]
    (first, first_spans), (second, spans) = presidio_redact_conversation(texts)
    assert first == "call me" and first_spans == []
    assert {texts[1][s.start:s.end] for s in spans} == {"212 555 0199", "a@example.com"}
    assert "a@example.com" not in second
