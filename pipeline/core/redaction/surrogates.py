"""Realistic surrogates: a detected value is replaced by a made-up value of the same kind and
shape, instead of a placeholder such as `<EMAIL_1>`.

Why: an agent trained on placeholders learns to write placeholders. Where the user typed a
real-looking address, a model trained on `lookup_customer({"email": "<EMAIL_1>"})` sends
the literal placeholder to the tool. With surrogates, the training conversation reads
"my email is jordan.lee41@example.net" ... `lookup_customer({"email":
"jordan.lee41@example.net"})`: the agent learns to copy what the user said.

Properties (tests pin them):
- consistent within a trajectory: one `SurrogateMap` per trajectory; the same value (after
  the per-type normalisation placeholders use) always gets the same surrogate, and a bare
  first or last name gets the matching part of its full name's surrogate;
- different across trajectories and not linkable back: the surrogate is drawn from a
  generator seeded by a keyed hash (BLAKE2b with a secret key) of the trajectory's scope,
  the type and the normalised value. Without the key, a surrogate says nothing about the
  value; with it, it is reproducible (re-running redaction gives the same data);
- never the original: a draw that normalises to the original is drawn again;
- format-preserving: same separators, digit counts and letter case pattern; cards keep
  their first digit and a valid Luhn check, IBANs their country, length and mod-97 check;
- never someone's real contact or account where a reserved space exists: emails use the
  example.com/.net/.org domains reserved for documentation (RFC 2606), North American phone
  numbers the 555-0100..0199 lines reserved for fiction, IPv4 and IPv6 addresses the
  documentation ranges (RFC 5737, RFC 3849). Names, streets and cities come from Faker's
  locale lists.

Which values were issued is recorded (`SurrogateMap.issued`, stored by the redaction step
beside the redacted tables), so that the release's scan can tell a surrogate from a value
that escaped redaction (`IssuedSurrogates`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from random import Random
from typing import Any

from pipeline.core.redaction.detectors import _STREET_SUFFIX, Span, detect, iban_valid, luhn_valid
from pipeline.core.redaction.placeholders import normalize

RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
IPV4_DOCUMENTATION = ("192.0.2.", "198.51.100.", "203.0.113.")
IPV6_DOCUMENTATION = "2001:db8"
US_STATES = ("AL", "AZ", "CA", "CO", "FL", "GA", "IL", "MA", "MI", "MN", "NC", "NJ", "NY", "OH", "OR", "PA",
             "TN", "TX", "VA", "WA", "WI")
TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mme", "herr", "frau"})
_SECRET_PREFIX = re.compile(
    r"^(?:sk-(?:proj-|ant-|live-|test-|svcacct-)?|[sr]k_(?:live|test)_|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|gh[pousr]_|"
    r"github_pat_|glpat-|xox[abposr]-|AIza|hf_|SG\.|eyJ|(?:Bearer|Basic|Token|Bot)\s+)"
)
_MAX_DRAWS = 16


def _faker():
    from faker import Faker

    global _FAKER
    if _FAKER is None:
        _FAKER = Faker("en_US")
    return _FAKER


_FAKER: Any = None


def _case_like(template: str, word: str) -> str:
    """`word` in the letter case pattern of `template` (Maria -> Jordan, MARIA -> JORDAN)."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template.islower():
        return word.lower()
    return word[:1].upper() + word[1:].lower() if template[:1].isupper() else word


def _same_shape(value: str, rng: Random) -> str:
    """Every digit a random digit, every letter a random letter of the same case, the rest kept."""
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(str(rng.randrange(10)))
        elif ch.isalpha() and ch.isascii():
            letter = chr(ord("a") + rng.randrange(26))
            out.append(letter.upper() if ch.isupper() else letter)
        else:
            out.append(ch)
    return "".join(out)


def _replace_digits(value: str, digits: str) -> str:
    """`value` with its digits replaced, in order, by `digits`."""
    it = iter(digits)
    return "".join(next(it) if ch.isdigit() else ch for ch in value)


def _luhn_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return d
    raise AssertionError("unreachable: one check digit always fits")


class SurrogateMap:
    """value -> surrogate for one trajectory (`scope`: the trajectory's stable record key)."""

    def __init__(self, key: bytes, scope: str) -> None:
        if not key:
            raise ValueError("a surrogate key is required (settings.surrogate_key)")
        self._key = key
        self._scope = scope
        self._by_value: dict[tuple[str, str], str] = {}
        self._name_parts: dict[str, str] = {}  # name token (casefolded) -> its surrogate token
        self.issued: set[tuple[str, str]] = set()  # (entity_type, surrogate)

    # -- the map ---------------------------------------------------------------------------

    def replacement(self, entity_type: str, value: str) -> str:
        """The surrogate of `value`, in `value`'s own format: the draw is seeded by the
        normalised value, so "(415) 555-0123" and "+1 415-555-0123" get the same number,
        each written its own way. Recorded in `issued`."""
        found = self._surrogate(entity_type, value)
        self.issued.add((entity_type, found))
        return found

    def _surrogate(self, entity_type: str, value: str) -> str:
        key = (entity_type, value.strip())
        found = self._by_value.get(key)
        if found is None:
            found = self._draw(entity_type, value, normalize(entity_type, value))
            self._by_value[key] = found
        return found

    def __len__(self) -> int:
        return len(self._by_value)

    def prepare(self, found: Iterable[tuple[str, str]]) -> None:
        """Draw the trajectory's names first, so that an email written from a name
        (maria.keller7@...) becomes one written from that name's surrogate, wherever the
        name appears."""
        for value, entity_type in found:
            if entity_type == "PERSON":
                self._surrogate(entity_type, value)

    def _rng(self, entity_type: str, normalized: str, attempt: int) -> Random:
        digest = hashlib.blake2b(f"{self._scope}\x1f{entity_type}\x1f{normalized}\x1f{attempt}".encode(),
                                 key=self._key[:64], digest_size=16).digest()
        return Random(int.from_bytes(digest, "big"))

    def _draw(self, entity_type: str, value: str, normalized: str) -> str:
        make = getattr(self, f"_{entity_type.lower()}", None) or self._generic
        for attempt in range(_MAX_DRAWS):
            surrogate = make(value, self._rng(entity_type, normalized, attempt))
            if normalize(entity_type, surrogate) != normalized:
                if entity_type == "PERSON":
                    self._remember_name(value, surrogate)
                return surrogate
        raise RuntimeError(f"no {entity_type} surrogate differs from the value after {_MAX_DRAWS} draws")

    # -- generators, one per entity type ----------------------------------------------------

    def _generic(self, value: str, rng: Random) -> str:
        return _same_shape(value, rng)

    def _email(self, value: str, rng: Random) -> str:
        """Name-like words of the local part become names (the trajectory's surrogate for a
        name it already replaced), digit runs random digits of the same length; the domain
        becomes a reserved one."""
        fake = _faker()
        fake.seed_instance(rng.random())
        local = value.rpartition("@")[0].strip()
        out = []
        for piece in re.split(r"([._+-])", local):
            match = re.fullmatch(r"([^\W\d_]*)(\d*)", piece)
            if match is None:  # other characters: same shape
                out.append(_same_shape(piece, rng))
                continue
            letters, digits = match.groups()
            if letters:
                word = self._name_parts.get(letters.casefold()) or (fake.last_name() if out else fake.first_name())
                out.append(word.lower())
            out.append("".join(str(rng.randrange(10)) for _ in digits))
        return f"{''.join(out) or 'user'}@{rng.choice(RESERVED_EMAIL_DOMAINS)}"

    def _phone(self, value: str, rng: Random) -> str:
        digits = re.sub(r"\D", "", value)
        national = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
        if len(national) == 10 and not value.strip().startswith(("+", "00")) or \
                len(national) == 10 and digits.startswith("1"):
            # North American: a real area code shape, exchange 555, line 01xx (reserved for fiction)
            area = f"{rng.randrange(2, 10)}{rng.randrange(0, 9)}{rng.randrange(10)}"
            new = area + "555" + "01" + f"{rng.randrange(100):02d}"
            return _replace_digits(value, digits[: len(digits) - 10] + new)
        keep = 2 if value.strip().startswith(("+", "00")) else 1  # the country code's start, or the trunk 0
        return _replace_digits(value, digits[:keep] + "".join(str(rng.randrange(10)) for _ in digits[keep:]))

    def _credit_card(self, value: str, rng: Random) -> str:
        digits = re.sub(r"\D", "", value)
        body = digits[0] + "".join(str(rng.randrange(10)) for _ in digits[1:-1])
        return _replace_digits(value, body + _luhn_digit(body))

    _NINO = re.compile(r"\s*[A-Z]{2}(?: ?\d{2}){3} ?[A-D]\s*")
    _NINO_FIRST, _NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"  # as HMRC allocates
    _NINO_UNUSED = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})

    def _national_id(self, value: str, rng: Random) -> str:
        nino = value.strip()
        if self._NINO.fullmatch(nino):  # UK National Insurance number: its letter rules kept
            prefix = "GB"
            while prefix in self._NINO_UNUSED:
                prefix = rng.choice(self._NINO_FIRST) + rng.choice(self._NINO_SECOND)
            return prefix + _same_shape(nino[2:-1], rng) + "ABCD"[rng.randrange(4)]
        return _same_shape(value, rng)

    def _iban(self, value: str, rng: Random) -> str:
        compact = value.replace(" ", "")
        country, bban = compact[:2], _same_shape(compact[4:], rng).upper()
        check = 98 - int("".join(str(int(ch, 36)) for ch in bban + country + "00")) % 97
        new = f"{country}{check:02d}{bban}"
        assert iban_valid(new)
        it = iter(new)
        return "".join(ch if ch == " " else next(it) for ch in value)

    def _ip_address(self, value: str, rng: Random) -> str:
        try:
            address = ipaddress.ip_address(value.split("%", 1)[0])
        except ValueError:
            return _same_shape(value, rng)
        if address.version == 4:
            return f"{rng.choice(IPV4_DOCUMENTATION)}{rng.randrange(1, 255)}"
        groups = ":".join(f"{rng.randrange(1, 0x10000):x}" for _ in range(4))
        return str(ipaddress.IPv6Address(f"{IPV6_DOCUMENTATION}:{rng.randrange(1, 0x10000):x}::{groups}"))

    def _person(self, value: str, rng: Random) -> str:
        """Each name word replaced by one that is not in the name (a first name, the last word by
        a last name, an initial by another letter), titles kept; a name word the trajectory already
        replaced gets the same replacement."""
        fake = _faker()
        fake.seed_instance(rng.random())
        tokens = value.split()
        words = [t for t in tokens if t.strip(".,") and t.strip(".,").casefold() not in TITLES]
        if not words:  # a title alone, or punctuation: a name in its place
            return _case_like(value.strip() or "Name", fake.first_name())
        originals = {w.strip(".,").casefold() for w in words}
        out = []
        for token in tokens:
            bare = token.strip(".,")
            if token not in words:
                out.append(token)
                continue
            new = self._name_parts.get(bare.casefold())
            while new is None or new.casefold() in originals:  # never a word of the original
                if len(bare) == 1:  # an initial
                    new = chr(ord("A") + rng.randrange(26))
                elif len(words) > 1 and token is words[-1]:
                    new = fake.last_name()
                else:
                    new = fake.first_name()
            out.append(token.replace(bare, _case_like(bare, new)))
        return " ".join(out)

    def _remember_name(self, value: str, surrogate: str) -> None:
        for old, new in zip(value.split(), surrogate.split()):
            old, new = old.strip(".,"), new.strip(".,")
            if len(old) >= 2 and old.casefold() not in TITLES and old.casefold() != new.casefold():
                self._name_parts.setdefault(old.casefold(), new)

    _STREET_KIND = re.compile(rf"\b{_STREET_SUFFIX}\b\.?.*$")
    _FUSED_KIND = re.compile(
        r"(?i)(straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|laan|straat|gracht|vej|gatan|gata)$")

    def _street_address(self, value: str, rng: Random) -> str:
        """Numbers of the same shape, the street's name words replaced and its kind (Street,
        Avenue NW, -straße, ...) kept; other parts: a city, a state with a ZIP code, a postcode
        of the same shape, where the value has them."""
        fake = _faker()
        fake.seed_instance(rng.random())
        out = []
        for i, part in enumerate(p.strip() for p in value.split(",")):
            state_zip = re.fullmatch(r"([A-Z]{2})\s+(\d{5}(?:-\d{4})?)", part)
            if state_zip:
                out.append(f"{rng.choice(US_STATES)} {_same_shape(state_zip.group(2), rng)}")
                continue
            words = []
            kind = self._STREET_KIND.search(part) if i == 0 else None
            head = part[:kind.start()] if kind else part
            for word in head.split():
                fused = self._FUSED_KIND.search(word) if i == 0 else None
                if any(ch.isdigit() for ch in word):
                    words.append(_same_shape(word, rng).lstrip("0") or "1")
                elif fused and fused.start() > 0:
                    words.append(fake.last_name() + fused.group(1))
                else:
                    words.append(_case_like(word, fake.last_name()))
            if i > 0 and not any(ch.isdigit() for ch in part):
                words = [fake.city()]
            out.append(" ".join(words + ([kind.group()] if kind else [])))
        return ", ".join(out)

    def _secret(self, value: str, rng: Random) -> str:
        prefix = _SECRET_PREFIX.match(value)
        keep = prefix.end() if prefix else 0
        return value[:keep] + _same_shape(value[keep:], rng)

    _api_key = _token = _password = _secret


class IssuedSurrogates:
    """The surrogates redaction wrote (as recorded in the warehouse), for the scan of what is
    about to be published: `unexpected(text)` is what the detectors still find once every
    issued surrogate is masked, i.e. personal data that escaped redaction. A value the
    detectors find in a release must be one redaction issued."""

    MASK = "<SURROGATE>"  # placeholder-shaped: no detector matches it

    def __init__(self, values: Iterable[str]) -> None:
        self.values = frozenset(v for v in values if v)
        # longest first, so a full name masks before its first name does
        ordered = sorted(self.values, key=lambda v: (-len(v), v))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __len__(self) -> int:
        return len(self.values)

    def masked(self, text: str) -> str:
        return self._pattern.sub(self.MASK, text) if self._pattern is not None else text

    def unexpected(self, text: str) -> list[Span]:
        return detect(self.masked(text))
