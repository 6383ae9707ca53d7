"""Microsoft Presidio's pattern recognizers on the privacy benchmark's texts: the peer.

Run by tests/perf/test_privacy_bench.py with the interpreter of its own virtualenv
(.venv-presidio, `make perf` creates it), so spaCy and the rest never touch the appliance's
environment. Imports nothing from the appliance.

    .venv-presidio/bin/python tests/perf/presidio_runner.py IN.json

IN.json::

    {"samples": [text, ...],            # analyzed once each, findings returned
     "throughput_text": text,           # optional: timed, best of "repeats"
     "throughput_texts": {name: text},  # optional: each timed the same way
     "repeats": n,
     "terms": [...],                    # the deny-list (CUSTOM)
     "ner": {"models": [name, ...], "text": text, "repeats": n}}  # optional

Prints one JSON object: Presidio's version, per sample the findings as [start, end, entity]
(code point offsets, like the appliance's), the best of ``repeats`` timings of analyzing
``throughput_text`` in seconds ("seconds") and of each of ``throughput_texts``
("seconds_by_text"), and for "ner" either {"model", "model_version", "seconds"} (the first
of "models" installed) or {"error": why it did not run}.

The engine is an AnalyzerEngine on a NoOpNlpEngine (no language model: only recognizers that
need none run), restricted to the entities that have a counterpart among the appliance's
types; phone numbers are parsed for the CN region, and the dictionary terms are a deny-list
recognizer, as Presidio offers them. The "ner" engine is the same recognizers on a spaCy
engine with a model, plus spaCy's PERSON and LOCATION: it runs only when one of the models
is installed in this virtualenv as a package (nothing is downloaded: the machine may be
offline, and `make .venv-presidio/.installed` installs none).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from importlib.metadata import version

import tldextract
from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine, NoOpNlpEngine
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
NER_ENTITIES = ["PERSON", "LOCATION"]

Analyze = Callable[[str], list[list[object]]]


def engine(terms: list[str], nlp: NlpEngine | None = None) -> AnalyzerEngine:
    if nlp is None:
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


def analyzer(analyzer: AnalyzerEngine, entities: list[str]) -> Analyze:
    def analyze(text: str) -> list[list[object]]:
        results = analyzer.analyze(text=text, language="en", entities=entities)
        return [[r.start, r.end, r.entity_type] for r in results]

    return analyze


def best(analyze: Analyze, text: str, repeats: int) -> float:
    out = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        analyze(text)
        out = min(out, time.perf_counter() - start)
    return out


def ner(job: dict[str, object], terms: list[str], entities: list[str]) -> dict[str, object]:
    import spacy
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    models = job["models"]
    assert isinstance(models, list)
    installed = [str(m) for m in models if spacy.util.is_package(str(m))]
    if not installed:
        return {"error": f"no spaCy model installed in {sys.prefix} (looked for {models})"}
    model = installed[0]
    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
    nlp.load()
    engine_ = engine(terms, nlp)
    engine_.registry.add_recognizer(SpacyRecognizer(supported_entities=NER_ENTITIES))
    analyze = analyzer(engine_, entities + NER_ENTITIES)
    text = str(job["text"])
    analyze(text[:2000])  # the first call loads what spaCy loads lazily
    repeats = job.get("repeats", 1)
    seconds = best(analyze, text, repeats if isinstance(repeats, int) else 1)
    return {"model": model, "model_version": version(model), "seconds": seconds}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    terms = job.get("terms", [])
    entities = ENTITIES + (["CUSTOM"] if terms else [])
    analyze = analyzer(engine(terms), entities)
    repeats = job.get("repeats", 1)

    out: dict[str, object] = {
        "version": version("presidio-analyzer"),
        "findings": [analyze(text) for text in job.get("samples", [])],
    }
    if "throughput_text" in job:
        out["seconds"] = best(analyze, job["throughput_text"], repeats)
    out["seconds_by_text"] = {
        name: best(analyze, text, repeats) for name, text in job.get("throughput_texts", {}).items()
    }
    if "ner" in job:
        try:
            out["ner"] = ner(job["ner"], terms, entities)
        except Exception as e:  # a model that does not load: the pattern figures still count
            out["ner"] = {"error": f"{type(e).__name__}: {e}"[:500]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
