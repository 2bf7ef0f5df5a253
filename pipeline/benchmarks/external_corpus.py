"""A second redaction corpus that our simulator did not write.

Generated with presidio-evaluator's `PresidioSentenceFaker` (Microsoft's generator for
evaluating PII detectors), offline:
- PII in prose: the package's own sentence templates, filled by Faker's providers of each
  locale in `LOCALES` (names, addresses, phones, IBANs, national ids in that country's
  formats) plus the package's extra providers. Its US-only address/phone providers are used
  for en_US only, its hospital provider not at all (it downloads a list from Wikidata).
- PII in structured formats (`FORMAT_TEMPLATES`): JSON, CSV, log lines, a vCard, a markdown
  table, SQL, YAML, an e-mail signature, a shipping label; the same locales.
- Secrets (`SECRET_TEMPLATES`, `SecretProvider`): vendor API keys, tokens, passwords in
  connection URLs and config files, PEM private keys, in the places they leak to (shell
  exports, ini/YAML/.env files, curl and CLI flags, git remotes, HTTP headers, code).

None of these formats is listed in our detectors' unit tests, and nothing here was tuned to
our detectors: a template is here because that is where such a value turns up.

Every filled-in value is ground truth with its type mapped to ours (`TYPE_OF_TOKEN`); values
of other types (cities, companies, dates, ...) are context that neither arm is asked to find.
Adjacent address parts (building number, street, postcode) are merged into one value.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import string
from collections.abc import Iterator, Sequence
from typing import Any

from faker.providers import BaseProvider

from pipeline.benchmarks.redact_scoring import EvalMessage

LOCALES: tuple[str, ...] = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "pl_PL")
SECRETS_LOCALE = "en_US"  # secrets do not vary by country; user and host names come from it
LOWER_CASE_RATIO = 0.05  # share of prose samples written all lower case (the package's example value)

# Template token → our entity type, for the tokens whose values are scored. The package's
# defaults map ssn to US_SSN; here it is the locale's national id, whatever its country.
TYPE_OF_TOKEN: dict[str, str] = {
    "person": "PERSON", "name": "PERSON", "name_female": "PERSON", "name_male": "PERSON",
    "first_name": "PERSON", "first_name_male": "PERSON", "first_name_female": "PERSON",
    "first_name_nonbinary": "PERSON", "last_name": "PERSON", "last_name_male": "PERSON",
    "last_name_female": "PERSON",
    "email": "EMAIL",
    "phone_number": "PHONE",
    "credit_card_number": "CREDIT_CARD",
    "iban": "IBAN",
    "ssn": "NATIONAL_ID",
    "ip_address": "IP_ADDRESS", "ipv4_public": "IP_ADDRESS", "ipv6": "IP_ADDRESS",
    "address": "STREET_ADDRESS", "street_address": "STREET_ADDRESS", "street_name": "STREET_ADDRESS",
    "building_number": "STREET_ADDRESS", "secondary_address": "STREET_ADDRESS", "postcode": "STREET_ADDRESS",
    "aws_access_key_id": "API_KEY", "aws_secret_access_key": "API_KEY", "github_token": "API_KEY",
    "stripe_key": "API_KEY", "stripe_webhook_secret": "API_KEY", "slack_bot_token": "API_KEY",
    "openai_key": "API_KEY", "google_api_key": "API_KEY", "sendgrid_key": "API_KEY",
    "twilio_api_key": "API_KEY", "npm_token": "API_KEY", "hex_api_key": "API_KEY",
    "jwt": "TOKEN", "bearer_token": "TOKEN", "gitlab_token": "TOKEN", "telegram_bot_token": "TOKEN",
    "password": "PASSWORD", "url_password": "PASSWORD",
    "private_key": "PRIVATE_KEY",
}
CONTEXT_TYPE = "CONTEXT"  # the type every other token is given: filled in, not scored

FORMAT_TEMPLATES: tuple[str, ...] = (
    '{"customer": {"name": "{{name}}", "email": "{{email}}", "phone": "{{phone_number}}"}, "status": "active"}',
    "id,name,email,phone,iban\n{{random_int}},{{name}},{{email}},{{phone_number}},{{iban}}",
    "2026-03-02T10:14:07Z INFO auth: login ok user={{email}} src={{ipv4_public}}",
    "[warn] rate limit exceeded for client {{ipv6}} (account {{email}})",
    "BEGIN:VCARD\nVERSION:3.0\nFN:{{name}}\nTEL;TYPE=CELL:{{phone_number}}\nEMAIL:{{email}}\nEND:VCARD",
    "| customer | phone | card |\n|---|---|---|\n| {{name}} | {{phone_number}} | {{credit_card_number}} |",
    "INSERT INTO customers (name, email, iban) VALUES ('{{name}}', '{{email}}', '{{iban}}');",
    'contact:\n  name: {{name}}\n  phone: "{{phone_number}}"\n  street: "{{street_address}}"',
    "Thanks for the quick reply.\n\n{{name}}\n{{job}}, {{company}}\nM: {{phone_number}}",
    "Ship to:\n{{name}}\n{{address}}",
    "charge declined: card {{credit_card_number}} exp {{credit_card_expire}}, holder {{name}}",
    "SEPA transfer to {{iban}} ({{name}}) ref INV-{{random_int}}",
    "KYC check: id_number={{ssn}} dob={{date_of_birth}} result=pass",
    "GET /api/v1/users?email={{email}}&src={{ipv4_public}} HTTP/1.1 200",
)

SECRET_TEMPLATES: tuple[str, ...] = (
    "export AWS_ACCESS_KEY_ID={{aws_access_key_id}}\nexport AWS_SECRET_ACCESS_KEY={{aws_secret_access_key}}",
    "[default]\naws_access_key_id = {{aws_access_key_id}}\naws_secret_access_key = {{aws_secret_access_key}}"
    "\nregion = eu-west-1",
    "git remote set-url origin https://{{user_name}}:{{github_token}}@github.com/acme/deploy-scripts.git",
    "STRIPE_SECRET_KEY={{stripe_key}}\nSTRIPE_WEBHOOK_SECRET={{stripe_webhook_secret}}",
    'curl https://api.openai.com/v1/chat/completions -H "Authorization: Bearer {{openai_key}}" -d @req.json',
    'slack:\n  bot_token: "{{slack_bot_token}}"\n  channel: "#deploys"',
    "https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key={{google_api_key}}",
    "sg = SendGridAPIClient('{{sendgrid_key}}')",
    "twilio api:core:messages:list --api-key {{twilio_api_key}} --api-secret {{hex_api_key}}",
    "//registry.npmjs.org/:_authToken={{npm_token}}",
    'requests.get(url, headers={"X-Api-Key": "{{hex_api_key}}"}, timeout=10)',
    "Set-Cookie: session={{jwt}}; Path=/; HttpOnly",
    "GET /v2/orders HTTP/1.1\nHost: api.internal\nAuthorization: Bearer {{bearer_token}}",
    "CI_JOB_TOKEN={{gitlab_token}} ./release.sh",
    'bot = telegram.Bot(token="{{telegram_bot_token}}")',
    "DATABASE_URL=postgres://{{user_name}}:{{url_password}}@{{hostname}}:5432/orders",
    "mongodb+srv://{{user_name}}:{{url_password}}@cluster0.{{domain_name}}/?retryWrites=true",
    "mysql -h {{hostname}} -u admin --password={{password}} orders",
    "spring:\n  datasource:\n    username: {{user_name}}\n    password: {{password}}",
    "docker login registry.example.com -u {{user_name}} -p {{password}}",
    "I reset it, the new password for {{user_name}} is {{password}}",
    "Here is the deploy key for the staging box:\n{{private_key}}",
    "$ cat ~/.ssh/id_ed25519\n{{private_key}}",
)

_ALNUM = string.ascii_letters + string.digits
_URL_SAFE_SPECIALS = "!$*+-._~"  # allowed unescaped in a URL's user:password part


class SecretProvider(BaseProvider):
    """Faker provider of secrets in their vendors' published shapes, from Faker's seeded random."""

    def _chars(self, alphabet: str, n: int) -> str:
        return "".join(self.generator.random.choices(alphabet, k=n))

    def aws_access_key_id(self) -> str:
        return "AKIA" + self._chars(string.ascii_uppercase + string.digits, 16)

    def aws_secret_access_key(self) -> str:
        return self._chars(_ALNUM + "/+", 40)

    def github_token(self) -> str:
        return self.generator.random.choice(["ghp_", "gho_", "ghs_"]) + self._chars(_ALNUM, 36)

    def stripe_key(self) -> str:
        return self.generator.random.choice(["sk_live_", "rk_live_"]) + self._chars(_ALNUM, 24)

    def stripe_webhook_secret(self) -> str:
        return "whsec_" + self._chars(_ALNUM, 32)

    def slack_bot_token(self) -> str:
        digits = string.digits
        return f"xoxb-{self._chars(digits, 12)}-{self._chars(digits, 13)}-{self._chars(_ALNUM, 24)}"

    def openai_key(self) -> str:
        # Project keys carry the base64 of "openai" (T3BlbkFJ) between two random runs.
        return f"sk-proj-{self._chars(_ALNUM + '_-', 54)}{self._chars(_ALNUM, 20)}T3BlbkFJ{self._chars(_ALNUM, 74)}"

    def google_api_key(self) -> str:
        return "AIza" + self._chars(_ALNUM + "_-", 35)

    def sendgrid_key(self) -> str:
        return f"SG.{self._chars(_ALNUM + '_-', 22)}.{self._chars(_ALNUM + '_-', 43)}"

    def twilio_api_key(self) -> str:
        return "SK" + self._chars("0123456789abcdef", 32)

    def npm_token(self) -> str:
        return "npm_" + self._chars(_ALNUM, 36)

    def hex_api_key(self) -> str:
        return self._chars("0123456789abcdef", 32)

    def jwt(self) -> str:
        """A signed JWT: base64url JSON header and claims, a random HS256 signature."""

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")

        issued = self.generator.random.randint(1_700_000_000, 1_800_000_000)
        claims = {"sub": self._chars(string.digits, 8), "name": self.generator.name(), "iat": issued,
                  "exp": issued + 3600}
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{payload}.{b64(self.generator.random.randbytes(32))}"

    def bearer_token(self) -> str:
        return self._chars(_ALNUM, 40)

    def gitlab_token(self) -> str:
        return "glpat-" + self._chars(_ALNUM + "_-", 20)

    def telegram_bot_token(self) -> str:
        return f"{self._chars(string.digits, 10)}:AA{self._chars(_ALNUM + '_-', 33)}"

    def url_password(self) -> str:
        n = self.generator.random.randint(10, 18)
        return self._chars(_ALNUM + _URL_SAFE_SPECIALS, n)

    def private_key(self) -> str:
        kind = self.generator.random.choice(["RSA ", "EC ", "OPENSSH ", ""])
        body = base64.b64encode(self.generator.random.randbytes(self.generator.random.choice([96, 240, 480]))).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "\n".join([f"-----BEGIN {kind}PRIVATE KEY-----", *lines, f"-----END {kind}PRIVATE KEY-----"])


_TOKEN = re.compile(r"{{\s*(\w+)\s*}}")
_ADDRESS_GAP = re.compile(r"[\s,]*")


def template_tokens(template: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(template)]


def planted_values(text: str, spans: Sequence[tuple[str, str, int, int]]) -> tuple[tuple[str, str], ...]:
    """(our type, value) of the scored (token, value, start, end) spans of one sample, in text
    order; address parts separated only by spaces and commas become one value."""
    typed = sorted((start, end, TYPE_OF_TOKEN.get(token, CONTEXT_TYPE)) for token, _, start, end in spans)
    merged: list[list[Any]] = []
    for start, end, etype in typed:
        if etype == CONTEXT_TYPE:
            continue
        last = merged[-1] if merged else None
        if (last is not None and etype == last[2] == "STREET_ADDRESS"
                and _ADDRESS_GAP.fullmatch(text, last[1], start)):
            last[1] = end
        else:
            merged.append([start, end, etype])
    return tuple(dict.fromkeys((etype, text[start:end]) for start, end, etype in merged if end > start))


def _providers(locale: str) -> list[Any]:
    from presidio_evaluator.data_generator import presidio_additional_entity_providers
    from presidio_evaluator.data_generator.faker_extensions import (
        AddressProviderNew,
        HospitalProvider,
        NationalityProvider,
        PhoneNumberProviderNew,
    )

    class CountryReturningNationalityProvider(NationalityProvider):
        """0.3.2's country() draws a country and forgets to return it: every {{country}} read "None"."""

        def country(self) -> str:
            return self.random_element(self.nationalities["country"].tolist())

    us_only = (AddressProviderNew, PhoneNumberProviderNew)
    return [CountryReturningNationalityProvider if p is NationalityProvider else p
            for p in presidio_additional_entity_providers
            if p is not HospitalProvider and (locale == "en_US" or p not in us_only)]


def _sentence_faker(locale: str, templates: Sequence[str], providers: Sequence[Any], lower_case_ratio: float,
                    seed: int) -> Any:
    """The package's generator with everything passed explicitly (its defaults print, and its
    bundled person records would override the locale's names and addresses)."""
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    mapping = {**PresidioSentenceFaker.ENTITY_TYPE_MAPPING}
    for template in templates:
        for token in template_tokens(template):
            mapping[token] = token  # keep the token: TYPE_OF_TOKEN decides what it is
    return PresidioSentenceFaker(
        locale=locale, lower_case_ratio=lower_case_ratio, sentence_templates=list(templates),
        entity_providers=list(providers), base_records=[{}], entity_type_mapping=mapping,
        provider_aliases=PresidioSentenceFaker.PROVIDER_ALIASES, random_seed=seed,
    )


def usable_templates(locale: str, templates: Sequence[str], providers: Sequence[Any]) -> list[str]:
    """The templates whose every token has a provider in this locale (en_GB has no state
    abbreviation, for instance); the package would raise on the others."""
    from faker import Faker

    probe = Faker(locale)
    for provider in providers:
        probe.add_provider(provider)
    aliases = {"person": "name", "credit_card": "credit_card_number", "birthday": "date_of_birth"}
    return [t for t in templates if all(hasattr(probe, aliases.get(tok, tok)) for tok in template_tokens(t))]


def evaluator_templates() -> list[str]:
    """presidio-evaluator's sentence templates, with its escaped newlines made real and the
    hospital templates left out (their provider needs the network)."""
    from presidio_evaluator.data_generator import presidio_templates_file_path

    lines = [line.strip() for line in presidio_templates_file_path.read_text().splitlines()]
    return [line.replace("\\n", "\n") for line in lines if line and "hospital" not in line.lower()]


@contextlib.contextmanager
def _global_random_restored() -> Iterator[None]:
    """The package seeds and draws from the process-wide generators (random, numpy, Faker's
    shared one): put them back as they were, so generating a corpus changes nothing else."""
    import random

    import numpy as np
    from faker import generator

    states = random.getstate(), np.random.get_state(), generator.random.getstate()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        generator.random.setstate(states[2])


def _samples(locale: str, templates: Sequence[str], providers: Sequence[Any], n: int, lower_case_ratio: float,
             seed: int, kind: str) -> list[EvalMessage]:
    with _global_random_restored(), contextlib.redirect_stderr(io.StringIO()):  # stderr: its progress bar
        faker = _sentence_faker(locale, templates, providers, lower_case_ratio, seed)
        samples = faker.generate_new_fake_sentences(n)
    out = []
    for i, sample in enumerate(samples):
        spans = [(s.entity_type, s.entity_value, s.start_position, s.end_position) for s in sample.spans]
        out.append(EvalMessage(sample.full_text, planted_values(sample.full_text, spans), f"{kind}/{locale}/{i}", kind))
    return out


def external_corpus(per_locale: int = 100, secrets: int = 300, seed: int = 7,
                    locales: Sequence[str] = LOCALES) -> list[EvalMessage]:
    """`per_locale` prose samples and as many structured ones for each locale, then `secrets`
    secret samples; each sample is one message (its own group). Deterministic for a seed."""
    prose = evaluator_templates()
    messages: list[EvalMessage] = []
    for k, locale in enumerate(locales):
        providers = _providers(locale)
        messages += _samples(locale, usable_templates(locale, prose, providers), providers, per_locale,
                             LOWER_CASE_RATIO, seed + k, "prose")
        messages += _samples(locale, usable_templates(locale, FORMAT_TEMPLATES, providers), providers,
                             per_locale, 0.0, seed + 100 + k, "format")
    messages += _samples(SECRETS_LOCALE, SECRET_TEMPLATES, [SecretProvider], secrets, 0.0, seed + 200, "secret")
    return messages
