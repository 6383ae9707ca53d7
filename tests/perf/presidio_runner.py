"""Microsoft Presidio's pattern recognizers on the privacy benchmark's texts: the peer.

Run by tests/perf/test_privacy_bench.py with the interpreter of its own virtualenv
(.venv-presidio, `make perf` creates it), so spaCy and the rest never touch the appliance's
environment. Imports nothing from the appliance.

    .venv-presidio/bin/python tests/perf/presidio_runner.py IN.json

IN.json: {"samples": [text, ...], "throughput_text": text, "repeats": n, "terms": [...]}.
Prints one JSON object: Presidio's version, per sample the findings as [start, end, entity]
(code point offsets, like the appliance's), and the best of ``repeats`` timings of analyzing
``throughput_text`` in seconds.

The engine is an AnalyzerEngine on a NoOpNlpEngine (no language model: only recognizers that
need none run), restricted to the entities that have a counterpart among the appliance's
types; phone numbers are parsed for the CN region, and the dictionary terms are a deny-list
recognizer, as Presidio offers them.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version

import tldextract
from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

# The email recognizer checks domains with tldextract, which would download the Public
# Suffix List: use the snapshot it ships with (this machine may have no network at all).
tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())

ENTITIES = ["EMAIL_ADDRESS", "IP_ADDRESS", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "PHONE_NUMBER"]


def engine(terms: list[str]) -> AnalyzerEngine:
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        EmailRecognizer(),
        IpRecognizer(),
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        IbanRecognizer(),
        PhoneRecognizer(supported_regions=("CN",)),
    ):
        registry.add_recognizer(recognizer)
    if terms:
        registry.add_recognizer(PatternRecognizer(supported_entity="CUSTOM", deny_list=terms))
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    analyzer = engine(job.get("terms", []))
    entities = ENTITIES + (["CUSTOM"] if job.get("terms") else [])

    def analyze(text: str) -> list[list[object]]:
        results = analyzer.analyze(text=text, language="en", entities=entities)
        return [[r.start, r.end, r.entity_type] for r in results]

    findings = [analyze(text) for text in job["samples"]]
    best = float("inf")
    for _ in range(job.get("repeats", 1)):
        start = time.perf_counter()
        analyze(job["throughput_text"])
        best = min(best, time.perf_counter() - start)
    out = {"version": version("presidio-analyzer"), "findings": findings, "seconds": best}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
