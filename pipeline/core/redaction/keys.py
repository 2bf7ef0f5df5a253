"""JSON keys that name personal data or secrets.

A value under such a key is replaced whole, by a placeholder of the key's type, whether or
not a pattern matches it ("phone": "call my office" is still a phone field). Keys are
compared case-insensitively after camelCase → snake_case (`firstName` = `first_name`,
`API-Key` = `api_key`).

`name` alone is ambiguous (products, tools, feedback signals have names too): it is a
PERSON only when the object around it does not look like a product/tool/metric and the
value itself looks like a name (letters only, at most five words).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEP = re.compile(r"[^a-z0-9]+")

EXACT: dict[str, str] = {}


def _add(entity_type: str, *keys: str) -> None:
    for k in keys:
        EXACT[k] = entity_type


_add("EMAIL", "email", "e_mail", "mail", "email_address", "emailaddress", "contact_email", "user_email",
     "customer_email", "billing_email", "reply_to", "from_email", "to_email", "recipient_email")
_add("PHONE", "phone", "phone_number", "phonenumber", "phone_no", "telephone", "tel", "mobile",
     "mobile_number", "cell", "cell_phone", "cellphone", "msisdn", "fax", "contact_phone", "home_phone",
     "work_phone", "customer_phone")
_add("STREET_ADDRESS", "address", "street", "street_address", "address_line", "address_line1",
     "address_line_1", "address_line2", "address_line_2", "addr", "new_address", "old_address",
     "shipping_address", "billing_address", "home_address", "postal_address", "mailing_address",
     "delivery_address", "residential_address")
_add("CREDIT_CARD", "card", "card_number", "cardnumber", "card_no", "credit_card", "credit_card_number",
     "cc_number", "ccnum", "debit_card")
_add("IBAN", "iban", "bank_account", "bank_account_number", "account_number", "iban_number")
_add("NATIONAL_ID", "ssn", "social_security_number", "social_security", "national_id", "national_id_number",
     "nino", "national_insurance_number", "tax_id", "tin", "itin", "passport", "passport_number",
     "drivers_license", "driver_license", "id_number", "personal_id")
_add("IP_ADDRESS", "ip", "ip_address", "ipaddress", "ip_addr", "client_ip", "remote_ip", "remote_addr",
     "source_ip", "src_ip", "user_ip", "ipv4", "ipv6", "x_forwarded_for")
_add("PERSON", "first_name", "firstname", "last_name", "lastname", "full_name", "fullname", "given_name",
     "family_name", "surname", "middle_name", "customer_name", "contact_name", "display_name",
     "cardholder", "cardholder_name", "card_holder", "account_holder", "recipient_name", "sender_name",
     "user_full_name", "legal_name", "maiden_name")
_add("PASSWORD", "password", "passwd", "pwd", "pass_word", "passphrase", "passcode", "new_password",
     "old_password", "current_password", "confirm_password", "user_password", "db_password", "pin")
_add("API_KEY", "api_key", "apikey", "x_api_key", "access_key", "access_key_id", "secret_key",
     "secret_access_key", "aws_secret_access_key", "aws_access_key_id", "private_key", "client_secret",
     "app_secret", "secret", "api_secret", "signing_key", "encryption_key")
_add("TOKEN", "token", "access_token", "refresh_token", "id_token", "auth_token", "session_token",
     "bearer", "bearer_token", "authorization", "api_token", "jwt", "csrf_token", "oauth_token",
     "github_token", "slack_token", "session_id_token")

# Suffix rules for keys not listed: ("_password" → PASSWORD, ...), checked longest first.
SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_password", "PASSWORD"), ("_passwd", "PASSWORD"), ("_api_key", "API_KEY"), ("_apikey", "API_KEY"),
    ("_secret_key", "API_KEY"), ("_secret", "API_KEY"), ("_private_key", "API_KEY"),
    ("_access_token", "TOKEN"), ("_token", "TOKEN"), ("_email", "EMAIL"), ("_email_address", "EMAIL"),
    ("_phone", "PHONE"), ("_phone_number", "PHONE"), ("_iban", "IBAN"), ("_ssn", "NATIONAL_ID"),
    ("_card_number", "CREDIT_CARD"), ("_ip", "IP_ADDRESS"), ("_ip_address", "IP_ADDRESS"),
    ("_first_name", "PERSON"), ("_last_name", "PERSON"), ("_full_name", "PERSON"),
    ("_address", "STREET_ADDRESS"),
)
# Keys ending in _address that are not street addresses.
NOT_STREET: frozenset[str] = frozenset({"ip_address", "email_address", "mac_address", "wallet_address",
                                        "contract_address", "memory_address", "bind_address",
                                        "server_address", "listen_address", "host_address"})
# Siblings of `name` that mark the object as something other than a person...
NON_PERSON_SIBLINGS: frozenset[str] = frozenset({
    "sku", "price", "qty", "quantity", "product_id", "product", "description", "parameters", "arguments",
    "function", "type", "version", "value", "unit", "category", "kind", "model", "tool", "schema",
    "properties", "url", "path", "size", "tool_call_id", "call_id", "score", "file", "filename",
    "extension", "label", "labels", "namespace", "module", "package", "status_code", "method", "endpoint",
    "brand", "metric", "dtype", "enum", "default", "required",
})
# ...and siblings that mark it as a person (these win).
PERSON_SIBLINGS: frozenset[str] = frozenset({
    "customer_id", "user_id", "account_id", "contact_id", "employee_id", "patient_id", "email", "phone",
    "address", "first_name", "last_name", "date_of_birth", "dob", "birthday", "gender",
})
_NAME_VALUE = re.compile(r"^[^\W\d_]+(?:[ '’.-]+[^\W\d_]+){0,4}\.?$")


@lru_cache(maxsize=4096)
def normalize_key(key: str) -> str:
    return _SEP.sub("_", _CAMEL.sub("_", key).lower()).strip("_")


@lru_cache(maxsize=4096)
def _static_key_type(norm: str) -> str | None:
    if norm in EXACT:
        return EXACT[norm]
    if norm in NOT_STREET:
        return None
    for suffix, entity_type in SUFFIXES:
        if norm.endswith(suffix):
            return entity_type
    return None


AMBIGUOUS = "AMBIGUOUS"  # static_key_type's answer for `name`-like keys: ask key_entity_type
_AMBIGUOUS_KEYS = frozenset({"name", "customer", "user", "contact", "recipient", "holder", "owner"})


@lru_cache(maxsize=8192)
def static_key_type(key: str) -> str | None:
    """key_entity_type for keys that do not depend on their value (fast path), else AMBIGUOUS."""
    norm = normalize_key(key)
    return AMBIGUOUS if norm in _AMBIGUOUS_KEYS else _static_key_type(norm)


def key_entity_type(key: str, value: Any = None, siblings: Mapping[str, Any] | None = None) -> str | None:
    """The entity type a JSON key names, or None. `value` and `siblings` decide `name`."""
    norm = normalize_key(key)
    if norm in _AMBIGUOUS_KEYS:
        text = value.strip() if isinstance(value, str) else ""
        if not _NAME_VALUE.match(text) or (norm != "name" and not text[:1].isupper()):
            return None
        if siblings is not None:
            keys = {normalize_key(k) for k in siblings}
            if keys.isdisjoint(PERSON_SIBLINGS) and not keys.isdisjoint(NON_PERSON_SIBLINGS):
                return None
        return "PERSON"
    return _static_key_type(norm)
