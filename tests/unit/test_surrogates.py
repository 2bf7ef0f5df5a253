"""Surrogates: realistic, format-preserving, consistent within a trajectory, keyed, never the
original; and the release scan accepts the surrogates redaction issued and nothing else."""

from __future__ import annotations

import ipaddress
import json
import re
from random import Random

import pytest

from pipeline.core.redaction import detect, redact_tables
from pipeline.core.redaction.detectors import iban_valid, luhn_valid
from pipeline.core.redaction.placeholders import normalize
from pipeline.core.redaction.surrogates import RESERVED_EMAIL_DOMAINS, IssuedSurrogates, SurrogateMap

KEY = bytes(range(32))


def originals(rng: Random) -> list[tuple[str, str]]:
    first = rng.choice(["Maria", "John", "Aiko", "Olusegun", "Zoë", "Pierre"])
    last = rng.choice(["Keller", "Smith", "Tanaka", "Adeyemi", "Dubois", "O'Neill"])
    digits = lambda n: "".join(str(rng.randrange(10)) for _ in range(n))  # noqa: E731
    card = "4" + digits(14)
    card += next(d for d in "0123456789" if luhn_valid(card + d))
    return [
        ("PERSON", f"{first} {last}"),
        ("EMAIL", f"{first.lower()}.{last.lower()}{rng.randrange(100)}@{rng.choice(['gmail.com', 'corp.io'])}"),
        ("PHONE", f"({rng.randrange(201, 990)}) {digits(3)}-{digits(4)}"),
        ("PHONE", f"+44 20 {digits(4)} {digits(4)}"),
        ("CREDIT_CARD", " ".join(card[i:i + 4] for i in range(0, 16, 4))),
        ("IBAN", "DE89 3704 0044 0532 0130 00"),
        ("NATIONAL_ID", f"{rng.randrange(100, 899)}-{digits(2)}-{digits(4)}"),
        ("NATIONAL_ID", "AB 12 34 56 C"),
        ("IP_ADDRESS", f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"),
        ("IP_ADDRESS", "fe80::1ff:fe23:4567:890a"),
        ("STREET_ADDRESS", f"{rng.randrange(1, 9999)} Oak Street, Springfield, IL {digits(5)}"),
        ("API_KEY", "sk-proj-" + digits(24)),
        ("TOKEN", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"),
        ("PASSWORD", "hunter2!" + digits(2)),
    ]


@pytest.mark.parametrize("seed", range(25))
def test_surrogates_keep_the_format_and_never_equal_the_original(seed):
    surrogates = SurrogateMap(KEY, f"trajectory-{seed}")
    for entity_type, value in originals(Random(seed)):
        new = surrogates.replacement(entity_type, value)
        assert normalize(entity_type, new) != normalize(entity_type, value), (entity_type, value, new)
        assert new not in value and value not in new
        shape = re.sub(r"[A-Za-z]", "a", re.sub(r"\d", "9", value))
        if entity_type in ("PHONE", "CREDIT_CARD", "NATIONAL_ID", "API_KEY", "PASSWORD", "TOKEN"):
            assert re.sub(r"[A-Za-z]", "a", re.sub(r"\d", "9", new)) == shape, (value, new)
        if entity_type == "EMAIL":
            assert new.rpartition("@")[2] in RESERVED_EMAIL_DOMAINS  # RFC 2606: nobody's mailbox
        if entity_type == "PHONE" and value.startswith("("):
            assert re.fullmatch(r"\(\d{3}\) 555-01\d\d", new)  # NANP lines reserved for fiction
        if entity_type == "CREDIT_CARD":
            assert luhn_valid(re.sub(r"\D", "", new)) and new[0] == value[0]
        if entity_type == "IBAN":
            assert iban_valid(new.replace(" ", "")) and new[:2] == "DE" and len(new) == len(value)
        if entity_type == "IP_ADDRESS":
            documentation = [ipaddress.ip_network(n) for n in
                             ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
            assert any(ipaddress.ip_address(new) in net for net in documentation)
        if entity_type in ("API_KEY", "TOKEN"):
            assert new[:3] == value[:3]  # the vendor prefix stays: still recognisably that kind
        # realistic: our own detectors see a value of the same kind
        context = {"PERSON": "Hi, I'm {}.", "STREET_ADDRESS": "Ship it to {}.", "PASSWORD": "password: {}"}
        text = context.get(entity_type, "{}").format(new)
        assert entity_type in {s.entity_type for s in detect(text)}, (entity_type, new)


def test_one_value_one_surrogate_within_a_trajectory_in_each_place_s_own_format():
    m = SurrogateMap(KEY, "t1")
    us, intl = m.replacement("PHONE", "(415) 555-0123"), m.replacement("PHONE", "+1 415-555-0123")
    assert re.sub(r"\D", "", us) == re.sub(r"\D", "", intl)[1:] and us.startswith("(") and intl.startswith("+1 ")
    assert m.replacement("EMAIL", "A.B@X.com") == m.replacement("EMAIL", "a.b@x.com")
    full = m.replacement("PERSON", "Maria Keller")
    assert m.replacement("PERSON", "Maria") == full.split()[0] and m.replacement("PERSON", "Keller") == full.split()[1]
    assert m.replacement("PERSON", "Maria Keller") == full


@pytest.mark.parametrize("value", ["Maria", "Dr.", "Mr Smith", "J. R. R. Tolkien", "maria keller",
                                   "Ms. Anna Maria Lopez"])
def test_no_word_of_a_name_survives(value):
    """Every name word is replaced, whatever the key: 200 keys, none keeps a word (a first
    name kept next to a new last name would still say who it was)."""
    for seed in range(200):
        m = SurrogateMap(seed.to_bytes(4, "big") + KEY, "t")
        m.replacement("PERSON", "Maria Keller")  # name parts already seen in the trajectory
        new = m.replacement("PERSON", value)
        old_words = [w.strip(".,").casefold() for w in value.split()]
        new_words = [w.strip(".,").casefold() for w in new.split()]
        kept = set(old_words) & set(new_words)
        assert kept <= {"dr", "mr", "ms"}, (seed, value, new)


def test_keyed_and_deterministic_and_different_across_trajectories():
    values = [("EMAIL", "maria.keller7@gmail.com"), ("PERSON", "Maria Keller"), ("PHONE", "+1 415-555-0123")]
    first = [SurrogateMap(KEY, "t1").replacement(*v) for v in values]
    assert first == [SurrogateMap(KEY, "t1").replacement(*v) for v in values]  # re-running gives the same
    assert all(a != b for a, b in zip(first, [SurrogateMap(KEY, "t2").replacement(*v) for v in values]))
    assert all(a != b for a, b in zip(first, [SurrogateMap(b"another key", "t1").replacement(*v) for v in values]))
    with pytest.raises(ValueError):
        SurrogateMap(b"", "t1")


def test_an_email_made_of_a_name_is_made_of_the_names_surrogate():
    tables = {"steps": [
        {"record_key": "k1", "content": "My email is maria.keller7@gmail.com."},
        {"record_key": "k1", "content": '{"name": "Maria Keller", "customer_id": "C-1"}'},
    ]}
    rows = redact_tables(tables, surrogate_key=KEY).tables["steps"]
    name = json.loads(rows[1]["content"])["name"]
    first, last = name.lower().split()
    assert re.search(rf"\b{first}\.{last}\d+@example\.(com|net|org)\b", rows[0]["content"]), rows


TABLES = {
    "trajectories": [{"record_key": "k1", "goal": "Refund for Maria Keller", "system_prompt": None,
                      "request_params": None, "task_spec": None, "extra": None}],
    "steps": [
        {"record_key": "k1", "content": "Hi, I'm Maria Keller, email maria.keller7@gmail.com, call +1 415-555-0123.",
         "reasoning": None, "error": None},
        {"record_key": "k2", "content": "This is Bob Stone (bob.stone@yahoo.com), card 4111 1111 1111 1111.",
         "reasoning": None, "error": None},
    ],
    "tool_calls": [{"record_key": "k1", "arguments": '{"email": "maria.keller7@gmail.com"}'}],
}
PLANTED = ["Maria Keller", "maria.keller7@gmail.com", "415-555-0123", "Bob Stone", "bob.stone@yahoo.com",
           "4111 1111 1111 1111"]


def test_redacted_tables_keep_no_original_and_list_every_surrogate():
    result = redact_tables(TABLES, surrogate_key=KEY)
    text = json.dumps(result.tables)
    assert not any(value in text for value in PLANTED)
    assert "<EMAIL_" not in text and "@example." in text
    issued = {(key, kind) for key, kind, _ in result.surrogates}
    assert {("k1", "PERSON"), ("k1", "EMAIL"), ("k1", "PHONE"), ("k2", "CREDIT_CARD")} <= issued
    assert {f.replacement for f in result.findings} == {value for _, _, value in result.surrogates}
    call = json.loads(result.tables["tool_calls"][0]["arguments"])["email"]
    assert call in result.tables["steps"][0]["content"]  # the call copies what the user said
    assert redact_tables(TABLES).surrogates == [] and "<EMAIL_1>" in json.dumps(redact_tables(TABLES).tables)


def test_the_release_scan_accepts_issued_surrogates_and_catches_a_leak():
    result = redact_tables(TABLES, surrogate_key=KEY)
    issued = IssuedSurrogates(value for _, _, value in result.surrogates)
    for row in result.tables["steps"]:
        assert detect(row["content"])  # realistic: the detectors see the surrogates...
        assert issued.unexpected(row["content"]) == []  # ...and the scan accepts them
    leaked = result.tables["steps"][0]["content"] + " Also reach me at maria.keller7@gmail.com."
    assert [s.entity_type for s in issued.unexpected(leaked)] == ["EMAIL"]
    assert IssuedSurrogates(()).unexpected(result.tables["steps"][1]["content"])  # nothing issued: all flagged


def test_gx_no_pii_expectation_passes_surrogates_only_when_they_were_issued():
    import pandas as pd

    from pipeline.shell.validation import validate_dataframe

    result = redact_tables(TABLES, surrogate_key=KEY)
    frame = pd.DataFrame({"content": [row["content"] for row in result.tables["steps"]]})
    suite = {"name": "no_pii", "expectations": [
        {"type": "expect_column_values_to_contain_no_pii", "kwargs": {"column": "content"}}]}
    issued = IssuedSurrogates(value for _, _, value in result.surrogates)
    assert validate_dataframe(frame, suite, issued=issued).success
    assert not validate_dataframe(frame, suite).success
    leaked = pd.DataFrame({"content": [frame["content"][0] + " bob.stone@yahoo.com"]})
    assert not validate_dataframe(leaked, suite, issued=issued).success
