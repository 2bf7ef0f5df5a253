"""Microsoft Presidio as the reference PII detector our redaction is measured against,
configured as its documentation recommends for a pattern-only deployment.

- No spaCy model can be downloaded here, so the NLP engine is `spacy.blank("en")` with spaCy's
  lookup lemmatizer (tables from `spacy-lookups-data`). Presidio's context enhancement
  (`LemmaContextAwareEnhancer`, on by default) compares the *lemmas* around a match with each
  recognizer's context words; a blank pipeline has no lemmas at all, so without the lemmatizer
  context could never raise a score. NER does not work, so PERSON and LOCATION are not
  compared (the NER-backed SpacyRecognizer is removed: on a blank model it finds nothing).
- `entities=` is limited to the types compared (`COMPARED_ENTITIES`), plus Presidio's own
  national-ID recognizers for the countries of the external corpus (UK NINO, Italian fiscal
  code, Polish PESEL), which its default registry does not load for English.
- `score_threshold=SCORE_THRESHOLD`: drops the weak patterns (e.g. a bare 9-digit number as
  US_SSN scores 0.05) unless a context word lifts them.
- Replacement is Presidio's AnonymizerEngine with its default operator (`<ENTITY_TYPE>`).

tldextract: Presidio's EmailRecognizer validates domains with `tldextract.extract`, whose
module-level extractor fetches the Public Suffix List over the network on first use (and
logs a traceback per URL when offline). We swap in an EmailRecognizer whose validation uses
`tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)`: the suffix list snapshot bundled
with tldextract, no network, no disk cache. Nothing global is patched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pipeline.core.redaction.detectors import Span

# Presidio entity → ours, for every entity it is asked for.
PRESIDIO_TO_OURS: dict[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "NATIONAL_ID",
    "UK_NINO": "NATIONAL_ID",
    "IT_FISCAL_CODE": "NATIONAL_ID",
    "PL_PESEL": "NATIONAL_ID",
    "IP_ADDRESS": "IP_ADDRESS",
}
COMPARED_ENTITIES: tuple[str, ...] = tuple(PRESIDIO_TO_OURS)
# Our types that Presidio is scored on; the rest need its NER model (PERSON, STREET_ADDRESS)
# or are secrets, which it does not claim to find: they are reported as not compared.
COMPARED_TYPES: frozenset[str] = frozenset(PRESIDIO_TO_OURS.values())
# Its pattern scores: validated card/IBAN/email 1.0, IP 0.6, phone 0.4, US_SSN 0.05-0.5; a context
# word adds 0.35. 0.4 keeps what its recognizers consider a match and drops the weak guesses.
SCORE_THRESHOLD = 0.4
CONVERSATION_SEPARATOR = "\n\n"  # between the messages of one conversation, analysed as one text


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
    """AnalyzerEngine on a blank English pipeline with lookup lemmas, pattern recognizers only."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import ItFiscalCodeRecognizer, PlPeselRecognizer, UkNinoRecognizer

    class BlankSpacyNlpEngine(SpacyNlpEngine):
        """SpacyNlpEngine on a blank pipeline plus the lookup lemmatizer, instead of a downloaded model."""

        def load(self) -> None:
            nlp = spacy.blank("en")
            nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
            nlp.initialize()  # loads the lookup table from spacy-lookups-data
            self.nlp = {"en": nlp}

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
    registry.remove_recognizer("SpacyRecognizer")
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(_offline_email_recognizer())
    for recognizer in (UkNinoRecognizer, ItFiscalCodeRecognizer, PlPeselRecognizer):
        registry.add_recognizer(recognizer(supported_language="en"))
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


@lru_cache(maxsize=1)
def anonymizer_engine() -> Any:
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()


def presidio_analyze(text: str) -> list[Any]:
    """Presidio's RecognizerResults for `text`: compared entities, score threshold, context on."""
    return analyzer_engine().analyze(text=text, language="en", entities=list(COMPARED_ENTITIES),
                                     score_threshold=SCORE_THRESHOLD)


def _anonymized(text: str, results: Sequence[Any]) -> tuple[str, list[Span]]:
    """(anonymized text, spans) with Presidio's entity names. Spans are the analyzer results
    minus those wholly inside another (the anonymizer merges those away too)."""
    if not results:
        return text, []
    anonymized = anonymizer_engine().anonymize(text=text, analyzer_results=list(results)).text
    spans: list[Span] = []
    for r in sorted(results, key=lambda r: (r.start, -(r.end - r.start), -r.score)):
        if not any(s.start <= r.start and r.end <= s.end for s in spans):
            spans.append(Span(r.start, r.end, r.entity_type))
    return anonymized, spans


def presidio_redact_conversation(texts: Sequence[str]) -> list[tuple[str, list[Span]]]:
    """The messages of one conversation analysed as one text (joined by CONVERSATION_SEPARATOR,
    so context words of one message count for the next, as our redactor sees a whole
    trajectory), then each message anonymized with the results that fall inside it."""
    from presidio_analyzer import RecognizerResult

    results = presidio_analyze(CONVERSATION_SEPARATOR.join(texts))
    out: list[tuple[str, list[Span]]] = []
    offset = 0
    for text in texts:
        end = offset + len(text)
        inside = [
            RecognizerResult(r.entity_type, max(r.start, offset) - offset, min(r.end, end) - offset, r.score)
            for r in results if r.start < end and offset < r.end
        ]
        out.append(_anonymized(text, inside))
        offset = end + len(CONVERSATION_SEPARATOR)
    return out
