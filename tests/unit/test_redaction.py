"""PII and secret redaction: detectors, placeholders, JSON-aware redaction, the raw tables,
scoring, and (on a small simulated corpus) recall against planted ground truth."""

from __future__ import annotations

import json

import pytest

from pipeline.benchmarks.redact_scoring import EvalMessage, RedactorOutput, evaluate
from pipeline.core.redaction import (
    PlaceholderMap,
    Span,
    TrajectoryRedactor,
    detect,
    redact_json,
    redact_messages,
    redact_tables,
    redact_text,
)
from pipeline.core.redaction.detectors import iban_valid, luhn_valid
from pipeline.core.redaction.keys import key_entity_type


def found(text: str) -> list[tuple[str, str]]:
    """(entity_type, matched text) of every detection."""
    return [(s.entity_type, text[s.start:s.end]) for s in detect(text)]


def types(text: str) -> set[str]:
    return {t for t, _ in found(text)}


# -- detectors: each type in realistic sentences -------------------------------------------------

POSITIVES = [
    ("EMAIL", "Hello, my email is maria.keller12@gmail.com, thanks!", "maria.keller12@gmail.com"),
    ("EMAIL", "cc first.last+tag@sub.example.co.uk.", "first.last+tag@sub.example.co.uk"),
    ("PHONE", "Account email a@b.co, phone +1 415-555-0123.", "+1 415-555-0123"),
    ("PHONE", "You can also call me at (212) 555-0199.", "(212) 555-0199"),
    ("PHONE", "Our London office is on 020 7946 0958.", "020 7946 0958"),
    ("PHONE", "Text my mobile 07700 900123 please", "07700 900123"),
    ("PHONE", "Erreichbar unter +49 30 12345678", "+49 30 12345678"),
    ("PHONE", "Appelez le 06 12 34 56 78", "06 12 34 56 78"),
    ("PHONE", "phone: 4155550123", "4155550123"),
    ("CREDIT_CARD", "it was paid with my card 4111 1111 1111 1111.", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "card 5555-5555-5555-4444 was charged twice", "5555-5555-5555-4444"),
    ("CREDIT_CARD", "Amex 3782 822463 10005 on file", "3782 822463 10005"),
    ("CREDIT_CARD", "number 4012888888881881", "4012888888881881"),
    ("IBAN", "send it to my bank account DE89 3704 0044 0532 0130 00.", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "IBAN: GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("NATIONAL_ID", "I'm Yuki, SSN 078-05-1120 if you need to verify.", "078-05-1120"),
    ("NATIONAL_ID", "My NI number is AB 12 34 56 C.", "AB 12 34 56 C"),
    ("NATIONAL_ID", "ssn: 078051120", "078051120"),
    ("IP_ADDRESS", "I also got a login alert from 185.23.4.99.", "185.23.4.99"),
    ("IP_ADDRESS", "sign-in from 2001:db8:85a3::8a2e:370:7334 yesterday", "2001:db8:85a3::8a2e:370:7334"),
    ("STREET_ADDRESS", "Can you ship order ORD-123456 to 1234 Maple Avenue, Springfield, IL 62701 instead?",
     "1234 Maple Avenue, Springfield, IL 62701"),
    ("STREET_ADDRESS", "I live at 221B Baker Street, London NW1 6XE.", "221B Baker Street, London NW1 6XE"),
    ("STREET_ADDRESS", "Deliver to 350 5th Avenue, Apt 12B, New York, NY 10118 please",
     "350 5th Avenue, Apt 12B, New York, NY 10118"),
    ("STREET_ADDRESS", "Meine Adresse: Hauptstraße 5, 10115 Berlin", "Hauptstraße 5, 10115 Berlin"),
    ("PERSON", "Hello, this is Maria Keller. Could you check my order?", "Maria Keller"),
    ("PERSON", "Hi, I'm Omar Haddad (omar@x.io).", "Omar Haddad"),
    ("PERSON", "My name is Ana García and I need help.", "Ana García"),
    ("PERSON", "Hi, Amara Osei here. Please change my address.", "Amara Osei"),
    ("PERSON", "Hi Sarah, thanks for waiting.", "Sarah"),
    ("PERSON", "Thanks for your help.\nBest regards,\nTom Hanks", "Tom Hanks"),
    ("PERSON", "Dear Mr. O'Brien, your ticket is open.", "O'Brien"),
    ("PERSON", "Name: John van der Berg", "John van der Berg"),
    ("API_KEY", "our integration fails with API key sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD, was it revoked?",
     "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD"),
    ("API_KEY", "aws key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"),
    ("API_KEY", "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 in the repo",
     "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("API_KEY", "slack xoxb-123456789012-abcdefABCDEF works", "xoxb-123456789012-abcdefABCDEF"),
    ("API_KEY", "config api_key=9f8e7d6c5b4a39281706 set", "9f8e7d6c5b4a39281706"),
    ("TOKEN", "my app sends 'Authorization: Bearer abc123def456ghi789' and gets 401",
     "abc123def456ghi789"),
    ("TOKEN", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("PASSWORD", "I can't log in, my password is Kestrel#4821 and it says invalid.", "Kestrel#4821"),
    ("PASSWORD", "db settings: pwd=S3cr3t!x", "S3cr3t!x"),
    ("PASSWORD", 'excerpt {"user": "u1", "password": "hunter2 with spaces"}', "hunter2 with spaces"),
    ("PASSWORD", "it connects with amqp://svc:Tr0ub4dor&3@10.1.2.3:5672/ and fails", "Tr0ub4dor&3"),
    ("API_KEY", "the key was:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oqGnh\n"
     "-----END EC PRIVATE KEY-----\nplease rotate it",
     "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oqGnh\n-----END EC PRIVATE KEY-----"),
    ("API_KEY", "log cut: -----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
     "-----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
]


@pytest.mark.parametrize("entity_type,text,value", POSITIVES, ids=[f"{p[0]}-{i}" for i, p in enumerate(POSITIVES)])
def test_detects_entity_in_realistic_sentence(entity_type, text, value):
    assert (entity_type, value) in found(text), found(text)


NEGATIVES = [
    "Order ORD-104233 was placed on 2026-11-16 for $48.00.",  # order id, date, price
    "Customer C-20431 has ticket T-1234 and refund R-0001-241475.",  # ids
    "Invoice number 4111111111111112 is unpaid.",  # 16 digits failing Luhn
    "Please upgrade to version 1.2.3.4 (or v10.0.0.1, build 4.3.2.1).",  # version strings
    "OID 1.3.6.1.4.1 and meeting at 10:00:00 on 16/11/2026.",  # dotted OID, time, date
    "Tracking 1Z999AA10123456784 shows the parcel in transit.",  # carrier tracking number
    "Fake IBAN DE00123456789012345678 fails the check.",  # mod-97 fails
    "Hi there, I'm moving next week! I'm not sure. This is urgent. Thanks Again!",  # no names
    "The password is wrong and my password is not working; password reset requested.",  # no secret
    "The API key is invalid, the token was revoked.",  # no secret
    "I ordered 2 Burr coffee grinders and 3 Paper filters x100.",  # quantities
    "agent_version 2026.11.1 answered in 1234.5 ms",  # build number, latency
    "see https://docs.example.com:8443/guide#auth or http://user:****@proxy/",  # a port; a masked password
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_not_pii(text):
    assert found(text) == []


def test_validators():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE8937040044053201300")  # wrong length for DE


def test_overlaps_resolve_to_one_span_longest_wins():
    # A Luhn-valid 16-digit run inside an IBAN must not split it: the IBAN (longer) wins.
    text = "IBAN DE89 3704 0044 0532 0130 00"
    spans = detect(text)
    assert spans == [Span(5, len(text), "IBAN")]
    # "Bearer <jwt>": the JWT and the bearer value are one TOKEN.
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlXzEyMzQ1"
    assert found(f"Authorization: Bearer {jwt}") == [("TOKEN", jwt)]
    # Spans never overlap and are sorted.
    many = detect("mail a@b.com, call +1 415-555-0123, card 4111 1111 1111 1111, ip 10.0.0.1")
    assert all(a.end <= b.start for a, b in zip(many, many[1:]))


# -- placeholders --------------------------------------------------------------------------------


def test_same_value_same_placeholder_within_a_trajectory():
    out = redact_messages([
        "Hi, I'm Maria Keller, email maria@x.com, card 4111 1111 1111 1111.",
        "Thanks Maria Keller! I sent it to maria@x.com. Other mail: bob@y.org",
        "The card 4111-1111-1111-1111 was refunded.",
    ])
    a, b, c = (o.text for o in out)
    assert a == "Hi, I'm <PERSON_1>, email <EMAIL_1>, card <CREDIT_CARD_1>."
    assert b == "Thanks <PERSON_1>! I sent it to <EMAIL_1>. Other mail: <EMAIL_2>"
    assert c == "The card <CREDIT_CARD_1> was refunded."  # same card, other separators


def test_value_found_once_is_redacted_everywhere_in_the_trajectory():
    # The bare name has no context in the last message; the trajectory-wide sweep finds it.
    out = redact_messages([
        '{"customer_id": "C-1", "name": "Maria Keller", "address": "12 Harbor Road, Portland, OR 97201"}',
        "Noted: Maria Keller lives at 12 Harbor Road, Portland, OR 97201. Keller confirmed.",
    ])
    assert out[1].text == "Noted: <PERSON_1> lives at <STREET_ADDRESS_1>. <PERSON_1> confirmed."


def test_placeholders_are_independent_across_trajectories():
    one = redact_messages(["I'm Maria Keller, maria@x.com", "I'm Bob Stone, bob@y.org"])
    two = redact_messages(["I'm Bob Stone, bob@y.org"])
    assert one[1].text == "I'm <PERSON_2>, <EMAIL_2>"
    assert two[0].text == "I'm <PERSON_1>, <EMAIL_1>"  # numbering restarts, nothing links them


def test_placeholder_map_normalises_per_type():
    m = PlaceholderMap()
    assert m.replacement("PHONE", "+1 415-555-0123") == m.replacement("PHONE", "(415) 555-0123") == "<PHONE_1>"
    assert m.replacement("EMAIL", "A@X.com") == m.replacement("EMAIL", "a@x.com") == "<EMAIL_1>"
    assert m.replacement("PERSON", "Maria Keller") == "<PERSON_1>"
    assert m.replacement("PERSON", "Maria") == "<PERSON_1>"  # part of a known full name
    assert m.replacement("PERSON", "Bob") == "<PERSON_2>"
    assert m.counts() == {"PHONE": 1, "EMAIL": 1, "PERSON": 2}


def test_redacting_twice_changes_nothing():
    once = redact_text("I'm Maria Keller, password: Kestrel#4821, sk-abcdefghijklmnopqrstuvwx1234").text
    again = redact_text(once)
    assert again.text == once and again.replacements == ()


# -- JSON-aware redaction ------------------------------------------------------------------------


def test_pii_keys_replace_whole_values_even_without_a_pattern():
    args = json.dumps({
        "email": "not-an-email-at-all", "firstName": "Zq", "Phone_Number": "call the office",
        "shipping_address": "the blue house by the lake", "api_key": "short", "password": "x1",
        "order_id": "ORD-104233", "max_tokens": 512, "card_number": 4111111111111111,
    })
    out = redact_json(args)
    doc = json.loads(out.text)  # still valid JSON
    assert doc == {
        "email": "<EMAIL_1>", "firstName": "<PERSON_1>", "Phone_Number": "<PHONE_1>",
        "shipping_address": "<STREET_ADDRESS_1>", "api_key": "<API_KEY_1>", "password": "<PASSWORD_1>",
        "order_id": "ORD-104233", "max_tokens": 512, "card_number": "<CREDIT_CARD_1>",
    }
    assert {(r.entity_type, r.path) for r in out.replacements} >= {("EMAIL", "$.email"), ("PERSON", "$.firstName")}


def test_json_tool_result_is_walked_and_only_changed_leaves_are_rewritten():
    result = (
        '{"customer_id": "C-22404", "name": "Amara Rossi", "email": "amara@proton.me",\n'
        ' "items": [{"sku": "SKU-1003", "name": "Insulated travel mug", "qty": 2}],\n'
        ' "note": "Customer says: call me at +1 415-555-0123",'
        ' "nested": {"address": {"street": "1 Main St", "zip": "78701"}}}'
    )
    out = redact_json(result)
    assert out.mode == "json"
    doc = json.loads(out.text)
    assert doc["name"] == "<PERSON_1>" and doc["email"] == "<EMAIL_1>"
    assert doc["items"][0]["name"] == "Insulated travel mug"  # a product's name is not a person
    assert doc["note"] == "Customer says: call me at <PHONE_1>"  # free text inside JSON: detectors
    assert doc["nested"]["address"] == {"street": "<STREET_ADDRESS_1>", "zip": "<STREET_ADDRESS_2>"}
    assert out.text.startswith('{"customer_id": "C-22404", "name": "<PERSON_1>"')  # layout kept
    assert "\n" in out.text  # original whitespace kept


def test_json_spans_are_in_original_coordinates_even_with_escapes():
    raw = json.dumps({"note": "Grüße \"x\" — mail a@b.com", "inner": json.dumps({"ip": "10.0.0.1"})})
    out = redact_json(raw)  # ensure_ascii escapes and a JSON document inside a string
    assert [raw[s.start:s.end] for s in out.spans] == ["a@b.com", "10.0.0.1"]
    assert json.loads(json.loads(out.text)["inner"]) == {"ip": "<IP_ADDRESS_1>"}


def test_malformed_json_falls_back_to_text_redaction():
    out = redact_json('{"email": "maria@x.com", "note": "I\'m Maria Keller"')  # truncated
    assert out.mode == "json_as_text"
    assert "maria@x.com" not in out.text and "Maria Keller" not in out.text


def test_deeply_nested_json_falls_back_to_text():
    deep = "[" * 995 + '"mail maria@x.com"' + "]" * 995
    out = redact_json(deep)
    assert "maria@x.com" not in out.text


def test_large_text_is_linear_not_quadratic():
    import time

    text = "Hello, I'm Maria Keller, mail maria@x.com, call +1 415-555-0123. Keller agreed. " * 4000
    start = time.perf_counter()
    out = redact_text(text)
    assert time.perf_counter() - start < 8  # ~1 s; the quadratic version took minutes
    assert len(out.spans) == 16000 and "Maria" not in out.text and "Keller" not in out.text


def test_duplicate_keys_are_handled():
    out = redact_json('{"note": "a", "note": "mail maria@x.com"}')
    assert json.loads(out.text) == {"note": "mail <EMAIL_1>"}


def test_key_classification():
    assert key_entity_type("customerEmail") == "EMAIL"
    assert key_entity_type("X-API-Key") == "API_KEY"
    assert key_entity_type("refresh_token") == "TOKEN"
    assert key_entity_type("max_tokens") is None and key_entity_type("prompt_tokens") is None
    assert key_entity_type("ip_address") == "IP_ADDRESS" and key_entity_type("mac_address") is None
    assert key_entity_type("name", "Maria Keller", {"email": "x"}) == "PERSON"
    assert key_entity_type("name", "lookup_order", {"arguments": {}}) is None
    assert key_entity_type("name", "Milk frother", {"sku": "SKU-1"}) is None


# -- redact_tables -------------------------------------------------------------------------------


def _tables():
    key_a, key_b = "lakefs://r/c/a.jsonl#1", "lakefs://r/c/a.jsonl#2"
    common = {"partition_date": "2026-11-16"}
    return {
        "trajectories": [
            {**common, "record_key": key_a, "trajectory_id": "t-a", "goal": "Refund for Maria Keller",
             "system_prompt": "Be nice.", "request_params": '{"temperature": 0.2, "max_tokens": 1024}',
             "task_spec": None, "extra": '{"client_ip": "10.1.2.3"}', "n_steps": 3},
            {**common, "record_key": key_b, "trajectory_id": "t-b", "goal": None, "system_prompt": None,
             "request_params": "{}", "task_spec": None, "extra": "{not json at all, mail bob@y.org",
             "n_steps": 1},
        ],
        "steps": [
            {**common, "record_key": key_a, "trajectory_id": "t-a", "step_index": 0, "role": "user",
             "content": "Hi, I'm Maria Keller. My email is maria@x.com", "reasoning": None, "error": None},
            {**common, "record_key": key_a, "trajectory_id": "t-a", "step_index": 1, "role": "assistant",
             "content": None, "reasoning": "Look up the customer.", "error": None},
            {**common, "record_key": key_a, "trajectory_id": "t-a", "step_index": 2, "role": "tool",
             "content": '{"name": "Maria Keller", "email": "maria@x.com", "phone": "(212) 555-0199"}',
             "reasoning": None, "error": None},
            {**common, "record_key": key_b, "trajectory_id": "t-b", "step_index": 0, "role": "user",
             "content": "I'm Bob Stone, bob@y.org", "reasoning": None, "error": None},
        ],
        "tool_calls": [
            {**common, "record_key": key_a, "trajectory_id": "t-a", "step_index": 1, "call_index": 0,
             "call_id": "call_1", "name": "lookup_customer", "arguments": '{"email": "maria@x.com"}'},
        ],
        "feedback": [
            {**common, "record_key": key_a, "trajectory_id": "t-a", "feedback_index": 0, "name": "thumbs",
             "value": '"up"', "comment": "Maria Keller was happy", "corrected_output": None},
        ],
        "quarantine": [
            {**common, "source_uri": "lakefs://r/c/b.jsonl", "source_line": 3, "reason": "truncated",
             "detail": "cut", "raw_excerpt": '{"messages": [{"role": "user", "content": "my ssn is 078-05-1120'},
        ],
    }


ORIGINALS = ["Maria Keller", "maria@x.com", "(212) 555-0199", "10.1.2.3", "bob@y.org", "Bob Stone", "078-05-1120"]


def test_redact_tables_keeps_shape_and_is_consistent_per_record():
    tables = _tables()
    result = redact_tables(tables)
    for name, rows in tables.items():
        assert len(result.tables[name]) == len(rows)
        assert [list(r) for r in result.tables[name]] == [list(r) for r in rows]
    t, s, c, f = (result.tables[n] for n in ("trajectories", "steps", "tool_calls", "feedback"))
    assert t[0]["goal"] == "Refund for <PERSON_1>"
    assert s[0]["content"] == "Hi, I'm <PERSON_1>. My email is <EMAIL_1>"
    assert json.loads(s[2]["content"]) == {"name": "<PERSON_1>", "email": "<EMAIL_1>", "phone": "<PHONE_1>"}
    assert json.loads(c[0]["arguments"]) == {"email": "<EMAIL_1>"}  # same record: same placeholder
    assert f[0]["comment"] == "<PERSON_1> was happy"
    assert json.loads(t[0]["extra"]) == {"client_ip": "<IP_ADDRESS_1>"}
    assert s[3]["content"] == "I'm <PERSON_1>, <EMAIL_1>"  # another record starts over
    assert t[0]["request_params"] == tables["trajectories"][0]["request_params"]  # untouched
    assert s[1] == tables["steps"][1]  # nothing to redact: row unchanged
    assert tables["steps"][0]["content"].startswith("Hi, I'm Maria")  # input not modified
    assert result.counts["EMAIL"] == 5 and result.counts["PERSON"] == 5  # occurrences, not values


def test_redact_tables_never_returns_an_original_value():
    result = redact_tables(_tables())
    dump = json.dumps(result.tables) + repr(result.findings) + repr(result.counts)
    for value in ORIGINALS:
        assert value not in dump
    assert all(f.replacement.startswith("<") for f in result.findings)
    assert {f.table for f in result.findings} == {"trajectories", "steps", "tool_calls", "feedback", "quarantine"}


def test_redact_tables_falls_back_to_text_for_malformed_json():
    result = redact_tables(_tables())
    assert result.malformed_json == 1
    assert result.tables["trajectories"][1]["extra"] == "{not json at all, mail <EMAIL_1>"
    assert "<NATIONAL_ID_1>" in result.tables["quarantine"][0]["raw_excerpt"]


def test_redact_tables_accepts_parsed_json_values():
    tables = {"tool_calls": [{"record_key": "k", "arguments": {"email": "maria@x.com", "n": 1}}]}
    out = redact_tables(tables).tables["tool_calls"][0]["arguments"]
    assert out == {"email": "<EMAIL_1>", "n": 1}


def test_trajectory_redactor_keeps_none():
    r = TrajectoryRedactor()
    r.add(None)
    r.add("mail a@b.com")
    first, second = r.finish()
    assert first is None and second is not None and second.text == "mail <EMAIL_1>"


# -- evaluation ----------------------------------------------------------------------------------


def test_evaluate_counts_recall_precision_and_surviving_secrets():
    text = "Hi, I'm Maria Keller, card 4111 1111 1111 1111, password is Kestrel#4821, order ORD-1"
    msg = EvalMessage(text, (("PERSON", "Maria Keller"), ("CREDIT_CARD", "4111 1111 1111 1111"),
                             ("PASSWORD", "Kestrel#4821")))
    card = text.index("4111")
    # Covers the person and only half the card, flags an order id, and leaves the password.
    spans = [(8, 20, "PERSON"), (card, card + 9, "CREDIT_CARD"), (text.index("ORD-1"), len(text), "ID")]
    redacted = text.replace("Maria Keller", "<P>").replace("4111 1111", "<C>")
    ev = evaluate([msg], [RedactorOutput(redacted, spans)])
    assert ev.by_type["PERSON"].recall == 1.0
    assert ev.by_type["CREDIT_CARD"].recall == 0.0  # the value is gone but not fully covered
    assert ev.by_type["PASSWORD"].recall == 0.0
    assert ev.by_type["ID"].precision == 0.0 and ev.by_type["CREDIT_CARD"].precision == 1.0
    assert ev.secrets_planted == 1 and ev.secrets_surviving == 1
    assert ev.recall() == pytest.approx(1 / 3)


def test_evaluate_maps_foreign_entity_names():
    msg = EvalMessage("mail a@b.com", (("EMAIL", "a@b.com"),))
    ev = evaluate([msg], [RedactorOutput("mail <EMAIL_ADDRESS>", [(5, 12, "EMAIL_ADDRESS")])],
                  {"EMAIL_ADDRESS": "EMAIL"})
    assert ev.by_type["EMAIL"].recall == 1.0 and ev.by_type["EMAIL"].precision == 1.0


# -- Presidio baseline ---------------------------------------------------------------------------


def test_presidio_baseline_runs_offline_with_pattern_recognizers(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("Presidio baseline tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    from pipeline.benchmarks.presidio_baseline import presidio_redact_conversation

    [(text, spans)] = presidio_redact_conversation(
        ["Mail john.doe@gmail.com or call +1 415-555-0123, card 4111 1111 1111 1111"])
    assert "john.doe@gmail.com" not in text and "<EMAIL_ADDRESS>" in text
    assert {"EMAIL_ADDRESS", "CREDIT_CARD"} <= {s.entity_type for s in spans}


# -- on a simulated corpus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from pipeline.benchmarks.redact import corpus_messages, load_corpus
    from pipeline.simulator import simulate

    out = tmp_path_factory.mktemp("redaction-corpus")
    simulate(days=2, per_day=60, out_dir=out, seed=11)
    tables, truth = load_corpus(out)
    return tables, truth, corpus_messages(tables, truth)


def test_recall_on_simulated_corpus(simulated):
    from pipeline.benchmarks.redact import run_ours
    from pipeline.core.redaction.detectors import STRUCTURED_TYPES

    _, truth, messages = simulated
    outputs, _ = run_ours(messages)
    ev = evaluate(messages, outputs, keep_examples=3)
    assert ev.secrets_planted > 0 and sum(s.planted for s in ev.by_type.values()) > 100
    for t in STRUCTURED_TYPES:
        if t in ev.by_type and ev.by_type[t].planted:
            assert ev.by_type[t].recall >= 0.99, (t, ev.missed_examples.get(t))
    assert ev.secrets_surviving == 0


def test_redact_tables_on_simulated_corpus_leaves_no_planted_value(simulated):
    tables, truth, _ = simulated
    result = redact_tables(tables)
    planted = {t["value"] for t in truth}
    for name in ("steps", "tool_calls"):
        for row in result.tables[name]:
            for column in ("content", "arguments"):
                value = row.get(column)
                if isinstance(value, str):
                    assert not any(p in value for p in planted), value
    for row in result.tables["tool_calls"]:
        json.loads(row["arguments"])
    assert result.malformed_json == 0


def test_benchmark_report_shape():
    from pipeline.benchmarks.redact import format_benchmark, run_redaction_benchmark

    result = run_redaction_benchmark(days=1, per_day=8, seed=3, external_per_locale=2, external_secrets=23)
    for corpus in ("simulated", "external"):
        assert result[corpus]["corpus"]["messages"] > 0
        assert all(result[corpus]["arms"][arm]["messages_per_s"] > 0 for arm in ("ours", "presidio", "detect_secrets"))
        assert set(result[corpus]["targets"]) == {
            "structured_recall_ge_99", "no_secret_survives", "speed_ge_20x",
            "recall_ge_presidio_every_compared_type", "recall_ge_detect_secrets_every_compared_type"}
    # Presidio is not scored on what needs its NER model, nor on secrets.
    assert "PERSON" not in result["external"]["arms"]["presidio"]["compared_types"]
    assert "API_KEY" in result["external"]["arms"]["detect_secrets"]["compared_types"]
    report = format_benchmark(result)
    assert "speed ratio" in report and "EMAIL" in report and "n/c" in report
    assert report.index("External corpus") < report.index("Simulated corpus")  # the headline comes first
    json.dumps(result)  # plain data, ready to be printed or logged as JSON
