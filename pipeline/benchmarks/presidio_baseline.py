"""Microsoft Presidio as the reference detector our redaction is measured against.

No spaCy model can be downloaded here, so the NLP engine is `spacy.blank("en")` (tokeniser
only: context words still work, NER does not) and only Presidio's predefined *pattern*
recognizers are used (the NER-backed SpacyRecognizer is removed: on a blank model it finds
nothing). Replacement is Presidio's AnonymizerEngine with its default operator
(`<ENTITY_TYPE>`).

tldextract: Presidio's EmailRecognizer validates domains with `tldextract.extract`, whose
module-level extractor fetches the Public Suffix List over the network on first use (and
logs a traceback per URL when offline). We swap in an EmailRecognizer whose validation uses
`tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)`: the suffix list snapshot bundled
with tldextract, no network, no disk cache. Nothing global is patched.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from pipeline.core.redaction.detectors import Span

# Presidio entity → ours. Entities not listed keep their Presidio name (URL, DATE_TIME, and
# US_DRIVER_LICENSE / US_PASSPORT / US_BANK_NUMBER, whose loose patterns mostly hit order
# numbers: kept apart so their noise is visible rather than folded into NATIONAL_ID).
PRESIDIO_TO_OURS: dict[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "NATIONAL_ID",
    "UK_NHS": "NATIONAL_ID",
    "UK_NINO": "NATIONAL_ID",
    "US_ITIN": "NATIONAL_ID",
    "IP_ADDRESS": "IP_ADDRESS",
    "PERSON": "PERSON",
    "LOCATION": "STREET_ADDRESS",
}


@lru_cache(maxsize=1)
def _offline_tld_extractor() -> Any:
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def _offline_email_recognizer() -> Any:
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    class OfflineEmailRecognizer(EmailRecognizer):
        """EmailRecognizer whose domain check never touches the network."""

        def validate_result(self, pattern_text: str) -> bool:
            return _offline_tld_extractor()(pattern_text).fqdn != ""

    return OfflineEmailRecognizer()


@lru_cache(maxsize=1)
def analyzer_engine() -> Any:
    """AnalyzerEngine on spacy.blank("en") with Presidio's predefined pattern recognizers."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankSpacyNlpEngine(SpacyNlpEngine):
        """SpacyNlpEngine that builds a blank pipeline instead of loading (or downloading) a model."""

        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
    registry.remove_recognizer("SpacyRecognizer")
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(_offline_email_recognizer())
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


@lru_cache(maxsize=1)
def anonymizer_engine() -> Any:
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


def presidio_analyze(text: str) -> list[Any]:
    """Presidio's RecognizerResults for `text` (default score threshold)."""
    return analyzer_engine().analyze(text=text, language="en")


def presidio_redact_text(text: str) -> tuple[str, list[Span]]:
    """(anonymized text, spans) with Presidio's entity names. Spans are the analyzer results
    minus those wholly inside another (the anonymizer merges those away too)."""
    results = presidio_analyze(text)
    if not results:
        return text, []
    anonymized = anonymizer_engine().anonymize(text=text, analyzer_results=results).text
    ordered = sorted(results, key=lambda r: (r.start, -(r.end - r.start), -r.score))
    spans: list[Span] = []
    for r in ordered:
        if any(s.start <= r.start and r.end <= s.end for s in spans):
            continue
        spans.append(Span(r.start, r.end, r.entity_type))
    return anonymized, spans
