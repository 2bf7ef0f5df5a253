"""Pattern detectors for personal data and secrets in free text.

Every detector is a compiled regular expression, most with a validator behind it (Luhn for
cards, mod-97 for IBANs, `ipaddress` for IPs, digit counts for phones, word lists for the
context-based ones). `detect(text)` runs them all and returns non-overlapping spans.

Decisions (tests pin them):
- A dotted quad right after a version word ("version 1.2.3.4", "v1.2.3.4", "build 10.0.0.1")
  is a version string, not an IP address. Anywhere else a valid dotted quad is an IP.
- Dates (2026-11-16, 16/11/2026), order/customer ids (ORD-104233, C-20431), prices and
  16-digit numbers that fail the Luhn check are not PII.
- PERSON is only detected from context (self-introductions, greetings, sign-offs, titles,
  "name: X"); a bare capitalised word is never a name. Names must be capitalised.
- IBAN and UK NINO must be upper case, as printed; lower-case look-alikes are left alone.
- A password in a URL (scheme://user:password@host) is a PASSWORD; a PEM private key block is
  an API_KEY as a whole, header to footer (as a `private_key` JSON key is).
- Secrets (API_KEY, TOKEN, PASSWORD) get the highest priority: when spans overlap, the
  longest span wins, ties go to the higher-priority type, and a partially overlapping loser is
  merged into the winner so no fragment of either value survives.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

ENTITY_TYPES: tuple[str, ...] = (
    "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "NATIONAL_ID", "IP_ADDRESS", "STREET_ADDRESS",
    "PERSON", "API_KEY", "TOKEN", "PASSWORD",
)
SECRET_TYPES: frozenset[str] = frozenset({"API_KEY", "TOKEN", "PASSWORD"})
STRUCTURED_TYPES: tuple[str, ...] = (
    "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "NATIONAL_ID", "IP_ADDRESS", "API_KEY", "TOKEN", "PASSWORD",
)
# Lower number = higher priority (only used to break ties between equally long spans).
PRIORITY: dict[str, int] = {
    "API_KEY": 0, "TOKEN": 1, "PASSWORD": 2, "CREDIT_CARD": 3, "IBAN": 4, "NATIONAL_ID": 5,
    "EMAIL": 6, "IP_ADDRESS": 7, "PHONE": 8, "STREET_ADDRESS": 9, "PERSON": 10,
}


class Span(NamedTuple):
    """A detected entity: text[start:end] is of type entity_type."""

    start: int
    end: int
    entity_type: str


# -- validators --------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Luhn checksum of a string of digits (no separators)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Lengths of IBANs for the countries that issue most of them; others: 15..34.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
    "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
}


def iban_valid(compact: str) -> bool:
    """ISO 13616 check: known length for the country, and mod-97 of the rearranged number is 1."""
    if not (15 <= len(compact) <= 34) or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
    except ValueError:
        return False


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# -- detectors ----------------------------------------------------------------------------------
# Each detector yields (start, end, entity_type, priority) candidates.

Candidate = tuple[int, int, str, int]  # start, end, entity type, priority

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)


def _detect_email(text: str) -> Iterable[Candidate]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end(), "EMAIL", PRIORITY["EMAIL"]


_PHONE_INTL = re.compile(
    r"(?<![\w+])(?:\+|(?<![./-])00(?=[1-9]))\d{1,3}(?:[ .-]?\(\d{1,4}\))?[ .-]?\d{1,5}"
    r"(?:[ .-]?\d{2,5}){1,5}(?![\w-]|[.,]\d)"
)
_PHONE_US = re.compile(
    r"(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|[.,]\d)"
)
# National numbers with a trunk 0 (UK 020 7946 0958, 07700 900123; DE 030 12345678; FR 06 12 34 56 78).
_PHONE_NATIONAL = re.compile(r"(?<![\w+./-])0\d{1,4}(?:[ /-]?\d{2,8}){1,4}(?![\w/-]|[.,]\d)")
# Any digit run after an explicit phone word.
_PHONE_CONTEXT = re.compile(
    r"(?i:\b(?:phone|tel|telephone|mobile|cell|cellphone|whatsapp|sms|fax|call me|text me|reach me)"
    r"(?:\s+(?:number|no\.?|nr\.?|#))?(?:\s+(?:is|at|on))?\s*[:#=]?\s*)"
    r"(\+?\(?\d[\d ().-]{6,20}\d)(?![\w-])"
)


def _detect_phone(text: str) -> Iterable[Candidate]:
    p = PRIORITY["PHONE"]
    for m in _PHONE_INTL.finditer(text):
        if 8 <= len(_digits(m.group())) <= 15:
            yield m.start(), m.end(), "PHONE", p
    for m in _PHONE_US.finditer(text):
        yield m.start(), m.end(), "PHONE", p
    for m in _PHONE_NATIONAL.finditer(text):
        if 9 <= len(_digits(m.group())) <= 12:
            yield m.start(), m.end(), "PHONE", p
    for m in _PHONE_CONTEXT.finditer(text):
        if 7 <= len(_digits(m.group(1))) <= 15:
            yield m.start(1), m.end(1), "PHONE", p


_CARD = re.compile(
    r"(?<![\w-])(?:"
    r"\d{4}(?P<s>[ -]?)\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"  # 4-4-4-4(-3), 13..19 digits
    r"|3[47]\d{2}(?P<a>[ -]?)\d{6}(?P=a)\d{5}"  # Amex 4-6-5
    r"|3[0689]\d{2}(?P<d>[ -]?)\d{6}(?P=d)\d{4}"  # Diners 4-6-4
    r")(?![\w-])"
)


def _detect_card(text: str) -> Iterable[Candidate]:
    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            yield m.start(), m.end(), "CREDIT_CARD", PRIORITY["CREDIT_CARD"]


_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")


def _detect_iban(text: str) -> Iterable[Candidate]:
    for m in _IBAN.finditer(text):
        value = m.group()
        # A greedy match may have swallowed a following group: shorten until it validates.
        while len(value) >= 15:
            if iban_valid(value.replace(" ", "")):
                yield m.start(), m.start() + len(value), "IBAN", PRIORITY["IBAN"]
                break
            cut = value.rfind(" ")
            value = value[:cut] if cut > 0 else value[:-1]


_SSN = re.compile(r"(?<![\w-])(?!000)\d{3}(?P<s>[- ])(?!00)\d{2}(?P=s)(?!0000)\d{4}(?![\w-])")
_SSN_CONTEXT = re.compile(r"(?i:\b(?:ssn|social security(?: number| no\.?)?|itin))\W{0,3}"
                          r"(?:(?i:number|no\.?|#)\W{0,2})?(\d{9})\b")
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"
)


def _detect_national_id(text: str) -> Iterable[Candidate]:
    p = PRIORITY["NATIONAL_ID"]
    for m in _SSN.finditer(text):
        yield m.start(), m.end(), "NATIONAL_ID", p
    for m in _SSN_CONTEXT.finditer(text):
        yield m.start(1), m.end(1), "NATIONAL_ID", p
    for m in _NINO.finditer(text):
        yield m.start(), m.end(), "NATIONAL_ID", p


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bversion|\bver\.?|\brelease|\bbuild|\bfirmware|_version)\W{0,3}$")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?:%\w+)?(?![\w:])"
)


def _detect_ip(text: str) -> Iterable[Candidate]:
    p = PRIORITY["IP_ADDRESS"]
    if "." in text:
        for m in _IPV4.finditer(text):
            if not _VERSION_BEFORE.search(text, max(0, m.start() - 16), m.start()):
                yield m.start(), m.end(), "IP_ADDRESS", p
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            value = m.group()
            # "::" compression or all eight groups: times like 10:00:00 are neither.
            if value == "::" or not ("::" in value or value.count(":") == 7):
                continue
            try:
                ipaddress.IPv6Address(value.split("%", 1)[0])
            except ValueError:
                continue
            yield m.start(), m.end(), "IP_ADDRESS", p


_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Boulevard|Blvd|Terrace|Ter|"
    r"Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Crescent|Cres|Close|Row|Alley|Loop|Plaza|"
    r"Walk|Gardens|Grove|Hill|Mews|Path|Pike|Broadway|Expressway|Freeway|Route)"
)
_CITY = r"[A-Z][A-Za-z.'-]+(?: [A-Z][A-Za-z.'-]+){0,2}"
_US_STATE_ZIP = r"[A-Z]{2} \d{5}(?:-\d{4})?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
_ADDRESS = re.compile(
    r"(?<![\w-])\d{1,6}[A-Za-z]?(?:-\d{1,4})?,?\s+"
    r"(?:(?:North|South|East|West|[NSEW]\.?)\s+)?"
    r"(?:(?:[A-Z][A-Za-z'’-]*\.?|\d{1,3}(?:st|nd|rd|th))\s+){1,4}"
    rf"{_STREET_SUFFIX}\b\.?"
    r"(?:\s+(?:NE|NW|SE|SW|[NSEW])\b)?"
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|#)\.?\s*#?[A-Za-z0-9-]{1,6}\b)?"
    rf"(?:,\s*{_CITY}(?:,?\s+{_US_STATE_ZIP}|,?\s+{_UK_POSTCODE}\b)|,?\s+{_US_STATE_ZIP}|,\s+{_UK_POSTCODE}\b)?"
)
# Continental style: street name with a fused suffix, then the number, optional postcode and city.
_ADDRESS_EU = re.compile(
    r"\b[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜ]?[a-zäöüß]+)*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|laan|straat|gracht|vej|gatan|gata)"
    r"\s+\d{1,4}[a-z]?(?:,\s*\d{4,5}\s+[A-ZÄÖÜ][a-zäöüß]+(?:[ -][A-ZÄÖÜ][a-zäöüß]+)?)?"
)


def _detect_address(text: str) -> Iterable[Candidate]:
    p = PRIORITY["STREET_ADDRESS"]
    for m in _ADDRESS.finditer(text):
        yield m.start(), m.end(), "STREET_ADDRESS", p
    for m in _ADDRESS_EU.finditer(text):
        yield m.start(), m.end(), "STREET_ADDRESS", p


# PERSON: capitalised name tokens after a context that introduces a name.
_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿ"
_NAME_TOKEN = rf"(?:[{_UP}][{_LOW}]+(?:['’-][{_UP}]?[{_LOW}]+)*|[{_UP}]['’][{_UP}][{_LOW}]+)"
_PARTICLE = r"(?:van|von|de|da|del|della|di|du|der|den|le|la|bin|ibn|al|el|ter|ten)"
_NAME = rf"{_NAME_TOKEN}(?:[ ](?:{_PARTICLE}[ ]){{0,2}}{_NAME_TOKEN}){{0,2}}"
_PERSON_PATTERNS = [
    # self-introduction: "my name is X", "I'm X", "this is X", "call me X"
    re.compile(
        r"(?i:\b(?:my name is|my name's|name is|i am|i'm|i’m|this is|it's|it is|call me|signed|sincerely|"
        r"regards|best regards|kind regards|warm regards|best wishes|cheers|thanks|thank you|many thanks|yours)"
        r")\s*[,:-]?\s+"
        rf"(?P<n>{_NAME})\b"
    ),
    # salutation: "Hi X," "Dear X" "Hello X!"
    re.compile(
        r"(?i:\b(?:hi|hello|hey|dear|good morning|good afternoon|good evening|greetings|welcome|thanks|thank you))"
        rf"\s*,?\s+(?P<n>{_NAME})\s*(?=[,!:.;?]|$)"
    ),
    # titles
    re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam|Mme|Herr|Frau)\.?\s+(?P<n>{_NAME})\b"),
    # "X here" at the start of a sentence or after a greeting: "Hi, Maria Keller here."
    re.compile(
        rf"(?:^|[,.!?;:\n]\s*|(?i:\b(?:hi|hello|hey))\s+)(?P<n>{_NAME})\s+here\b(?=\s*(?:[.,!;:()\-–—]|$))"
    ),
    # sign-off on its own line after a closing word, or "-- X" on the last line
    re.compile(
        r"(?im:(?:thanks|thank you|regards|best|cheers|sincerely|yours|take care|br)[,.!]?[ \t]*\n[ \t]*)"
        rf"(?P<n>{_NAME})[ \t]*$",
        re.MULTILINE,
    ),
    re.compile(rf"(?m)^[ \t]*(?:--|—|–)[ \t]*(?P<n>{_NAME})[ \t]*$"),
    # key-value text: "Name: X", "customer_name=X"
    re.compile(
        r"(?i:\b(?:full[ _]?name|first[ _]?name|last[ _]?name|customer[ _]?name|contact[ _]?name|"
        r"cardholder(?:[ _]?name)?|recipient|name))"
        rf"[\"']?\s*[:=]\s*[\"']?(?P<n>{_NAME})\b"
    ),
]
# Capitalised words that follow those contexts without being names.
NOT_NAMES: frozenset[str] = frozenset(
    """A An The This That These Those It Its I Me My Our Your Their His Her We You They He She
    Sorry Not Just Still Also Here There Going Trying Looking Happy Glad Good Great Fine Okay Ok OK Back
    New Ready Done Sure Interested Writing Calling Contacting Reaching Having Unable Able Afraid Waiting
    Team All Everyone Everybody Anyone Someone Support Customer Customers Service Sir Madam Again
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July
    August September October November December Today Tomorrow Yesterday God Guys Folks Friend Friends
    Please Thanks Thank Regards Best Cheers Hello Hi Hey Dear Welcome Yes No Nothing Something Everything
    Click Tap Look Sign Start Stop Read Over Right Info Details More Help Order Account Email Phone Name
    What Why How When Where Which Who Whom Is Are Was Were Be Been Can Could Would Should Will Shall Do
    Does Did Has Have Had Let Now Then So If But And Or For With From To In On At By Of As Up Out
    Regarding About Concerning Re Fwd Urgent Important Update Question Issue Problem Request
    Admin Administrator User Agent Bot Assistant System Manager Mister Mrs Ms Mr Dr Miss Morning Afternoon
    Evening Night Day Week Month Year Again Already Almost Very Really Quite Only Even Never Always World
    Universe Internet""".split()
)


def _detect_person(text: str) -> Iterable[Candidate]:
    p = PRIORITY["PERSON"]
    for pattern in _PERSON_PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span("n")
            tokens = m.group("n").split(" ")
            # Drop leading/trailing non-name words ("Thanks Again", "I'm Maria And").
            while tokens and tokens[0] in NOT_NAMES:
                start += len(tokens[0]) + 1
                tokens.pop(0)
            while tokens and tokens[-1] in NOT_NAMES:
                end -= len(tokens[-1]) + 1
                tokens.pop()
            if tokens and end > start:
                yield start, end, "PERSON", p


# Vendor API keys.
_API_KEY = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-|live-|test-|svcacct-)?[A-Za-z0-9_-]{20,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
    r")(?![\w-])"
)
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*(?![\w-])")
_AUTH_HEADER = re.compile(r"\b(?:Bearer|Basic|Token|Bot)\s+(?P<v>[A-Za-z0-9\-._~+/]{8,}=*)", re.IGNORECASE)
# "key: value" secrets in text (also quoted, as in a truncated JSON excerpt).
_SECRET_KV = re.compile(
    r"(?i)(?<![a-z])(?P<k>password|passwd|passphrase|passcode|pwd|"
    r"api[_ -]?key|apikey|x-api-key|access[_ -]?key(?:[_ -]?id)?|secret[_ -]?(?:access[_ -]?)?key|"
    r"client[_ -]?secret|private[_ -]?key|secret|"
    r"(?:access|auth|refresh|id|session|bearer|api)[_ -]?token|token)"
    r"(?![a-z])[\"']?\s*(?P<sep>\bis\b|\bwas\b|:=|=>|[:=])?\s*"
    r"(?:\"(?P<q1>[^\"\n]{1,200})\"|'(?P<q2>[^'\n]{1,200})'|(?P<v>[^\s\"',;]{1,200}))"
)
# A password in a URL's user information (RFC 3986: scheme://user:password@host), as in
# database and broker connection strings and git remotes with a token.
_URL_PASSWORD = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:(?P<v>[^\s/?#@]+)@")
# A PEM private key (RFC 7468), whole: header, base64 body, footer. Without a footer (a log
# excerpt cut short) the body runs as far as the base64 lines go.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<k>[A-Z0-9 ]*?)PRIVATE KEY(?P<b>(?: BLOCK)?)-----"
    r"(?:.*?-----END (?P=k)PRIVATE KEY(?P=b)-----|(?:\s*[A-Za-z0-9+/=]{16,})+)",
    re.DOTALL,
)
_PASSWORD_KEYS = frozenset({"password", "passwd", "passphrase", "passcode", "pwd"})
NOT_SECRETS: frozenset[str] = frozenset(
    """not wrong invalid incorrect correct expired required missing empty too the a an being still reset
    changed blank weak strong case sensitive same different my your our their new old that this it is was
    and or for of to in on at by with from was were has have had does did will can could should would
    revoked rejected accepted valid set stored saved hidden masked redacted ok okay fine working broken
    field value null none undefined true false string number here there please again""".split()
)


def _secret_kind(key: str) -> str:
    k = key.lower().replace("-", "_").replace(" ", "_")
    if k in _PASSWORD_KEYS:
        return "PASSWORD"
    if "token" in k:
        return "TOKEN"
    return "API_KEY"


def _plausible_secret(kind: str, value: str, has_sep: bool) -> bool:
    if value.lower() in NOT_SECRETS or set(value) <= set("*•x.-_#"):
        return False
    if value.startswith("<") and value.endswith(">"):  # already a placeholder
        return False
    if kind == "PASSWORD":
        return has_sep and len(value) >= 4
    has_digit = any(c.isdigit() for c in value)
    return len(value) >= 12 and (has_digit or len(value) >= 24)


_TRAILING_PUNCT = ".,;:)]}\"'"  # not "!" or "?": more often part of a password than not


def _detect_secrets(text: str) -> Iterable[Candidate]:
    for m in _API_KEY.finditer(text):
        yield m.start(), m.end(), "API_KEY", PRIORITY["API_KEY"]
    if "eyJ" in text:
        for m in _JWT.finditer(text):
            yield m.start(), m.end(), "TOKEN", PRIORITY["TOKEN"]
    for m in _AUTH_HEADER.finditer(text):
        start, end = m.span("v")
        while end - start > 8 and text[end - 1] in ".":
            end -= 1
        value = text[start:end]
        if any(c.isdigit() for c in value) or len(value) >= 16:
            yield start, end, "TOKEN", PRIORITY["TOKEN"]
    if "://" in text:
        for m in _URL_PASSWORD.finditer(text):
            if _plausible_secret("PASSWORD", m.group("v"), True):
                yield m.start("v"), m.end("v"), "PASSWORD", PRIORITY["PASSWORD"]
    if "PRIVATE KEY" in text:
        for m in _PRIVATE_KEY.finditer(text):
            yield m.start(), m.end(), "API_KEY", PRIORITY["API_KEY"]
    for m in _SECRET_KV.finditer(text):
        group = "q1" if m.group("q1") is not None else "q2" if m.group("q2") is not None else "v"
        start, end = m.span(group)
        if group == "v":  # an unquoted value ends before closing punctuation
            while end - start > 1 and text[end - 1] in _TRAILING_PUNCT:
                end -= 1
        value = text[start:end]
        kind = _secret_kind(m.group("k"))
        has_sep = m.group("sep") is not None or group != "v"
        if _plausible_secret(kind, value, has_sep):
            yield start, end, kind, PRIORITY[kind] + 20  # generic: loses ties to the vendor patterns


_HAS_DIGIT = re.compile(r"\d")
_HAS_UPPER = re.compile(rf"[{_UP}]")
# Cheap pre-checks: a detector group only runs when its trigger occurs (a superset of what
# its patterns need), which skips most of the work on the many texts without PII.
# Both run on the lower-cased text (faster than IGNORECASE).
_SECRET_TRIGGER = re.compile(
    r"://|sk-|[sr]k_|akia|asia|agpa|aida|aroa|anpa|gh[pousr]_|github_pat|glpat-|xox|aiza|hf_|sg\.|eyj"
    r"|bearer|basic|token|bot|pass|pwd|key|secret"
)
_PERSON_TRIGGER = re.compile(
    r"name|\b(?:i am|i['’]m|this is|it['’]?s|it is|call me|signed|sincerely|regards|wishes|cheers|thank|"
    r"yours|hi|hello|hey|dear|good|greetings|welcome|mr|mrs|ms|miss|mx|dr|prof|sir|madam|mme|herr|frau|"
    r"recipient|cardholder|br|take care|best|here)\b|--|—|–"
)


_NO_DIGITS = str.maketrans("", "", "0123456789")


def candidates(text: str) -> list[Candidate]:
    """All raw (possibly overlapping) detections."""
    out: list[Candidate] = []
    n = len(text)
    if n < 6:  # shorter than any value we detect
        return out
    low = text.lower()
    if _SECRET_TRIGGER.search(low):
        out.extend(_detect_secrets(text))
    if "@" in text:
        out.extend(_detect_email(text))
    digits = n - len(text.translate(_NO_DIGITS))
    upper = _HAS_UPPER.search(text) is not None
    if digits:
        if digits >= 13:
            out.extend(_detect_card(text))
        if upper and digits >= 2 and n >= 15:
            out.extend(_detect_iban(text))
        if digits >= 6:
            out.extend(_detect_national_id(text))
        if digits >= 4 and ("." in text or "::" in text) or text.count(":") >= 7:
            out.extend(_detect_ip(text))
        if digits >= 7:
            out.extend(_detect_phone(text))
        if upper and n >= 8:
            out.extend(_detect_address(text))
    elif "::" in text:
        out.extend(_detect_ip(text))  # IPv6 like fe80::abcd may have no digit
    if upper and _PERSON_TRIGGER.search(low):
        out.extend(_detect_person(text))
    return out


def resolve(cands: Iterable[Candidate]) -> list[Span]:
    """Non-overlapping spans sorted by start. Within a cluster of overlapping candidates the
    longest wins (ties: higher priority, then leftmost); a candidate partly overlapping an
    accepted span is merged into it (the accepted type wins), so no fragment survives."""
    if not isinstance(cands, list):
        cands = list(cands)
    if len(cands) <= 1:
        return [Span(c[0], c[1], c[2]) for c in cands]
    by_start = sorted(set(cands))
    out: list[Span] = []
    cluster: list[Candidate] = []
    cluster_end = -1
    for c in by_start:
        if cluster and c[0] >= cluster_end:
            out.extend(_resolve_cluster(cluster))
            cluster = []
        cluster.append(c)
        cluster_end = max(cluster_end, c[1]) if len(cluster) > 1 else c[1]
    out.extend(_resolve_cluster(cluster))
    return out


def _resolve_cluster(cluster: list[Candidate]) -> list[Span]:
    if len(cluster) == 1:
        c = cluster[0]
        return [Span(c[0], c[1], c[2])]
    accepted: list[list[Any]] = []  # [start, end, type]
    for start, end, etype, _ in sorted(cluster, key=lambda c: (c[0] - c[1], c[3], c[0])):
        hits = [a for a in accepted if start < a[1] and a[0] < end]
        if not hits:
            accepted.append([start, end, etype])
            continue
        keep = hits[0]  # the longest (accepted first)
        keep[0] = min([start] + [h[0] for h in hits])
        keep[1] = max([end] + [h[1] for h in hits])
        if len(hits) > 1:  # it bridged several accepted spans: fuse them into the longest
            accepted = [a for a in accepted if a is keep or not any(a is h for h in hits)]
    accepted.sort(key=lambda a: a[0])
    merged: list[Span] = []
    for start, end, etype in accepted:  # a merge may have created new overlaps
        if merged and start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, end), last.entity_type)
        else:
            merged.append(Span(start, end, etype))
    return merged


def detect(text: str) -> list[Span]:
    """Non-overlapping PII and secret spans in `text`, sorted by start."""
    if not text:
        return []
    return resolve(candidates(text))
