"""``policies/content.yaml``: categories of terms, what is done with each, per direction.

    version: 1
    mask: "*"                      # one character: each character of a hit; longer: the hit
    categories:
      - name: gambling
        description: 赌博
        terms: [网络赌博, online casino]
        term_files: [lists/gambling.txt]   # beside the policy; one term a line, # comments
                                           # (and terms/gambling.txt, the portal's import)
        patterns: ["{ignore|disregard} {all |}previous instructions"]  # {a|b|} alternatives
        regexes: ['\\d{3}彩票']              # on the folded text (see ``normalize``)
        pinyin: true                         # a Chinese term's pinyin matches too
        allow: [反赌博]                       # innocent words that contain a term
        mask: "[已屏蔽]"
        action: {input: block, output: mask}  # block | mask | flag | allow
    leak: block                    # a canary in an answer (category system_prompt_leak)
    aliases:
      support-bot: {system_prompt: "...", canary: true}
    overrides:
      roles: {auditor: {gambling: {input: flag}}}
      keys: {ak-1234: {gambling: {output: flag}}}

Validated once, at start-up and on every reload: an error names the file and line (of a
term file too). A category's terms come from its inline ``terms``, its files and its
expanded ``patterns``; each is folded as the text it is matched in (``normalize``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from appliance import policyfile
from appliance.errors import PolicyError

Action = Literal["allow", "flag", "mask", "block"]
ACTIONS: tuple[Action, ...] = ("allow", "flag", "mask", "block")  # least to most strict
DIRECTIONS = ("input", "output")
LEAK_CATEGORY = "system_prompt_leak"
MAX_EXPANSIONS = 200_000  # of one pattern
MAX_TERMS = 2_000_000  # of a policy, all categories
CategoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Actions(_Strict):
    input: Action = "flag"
    output: Action = "flag"

    def of(self, direction: str) -> Action:
        return self.input if direction == "input" else self.output


class PartialActions(_Strict):
    input: Action | None = None
    output: Action | None = None


class Sequence(_Strict):
    """Words of each part in order, each part within ``within`` characters (of the
    squeezed text, in one sentence) of the one before: ``ignore`` … ``previous`` …
    ``instructions``. A hit spans the first part's word to the last part's."""

    parts: Annotated[
        list[Annotated[list[NonEmpty], Field(min_length=1)]], Field(min_length=2, max_length=6)
    ]
    within: Annotated[int, Field(ge=0, le=200)] = 24
    sentence: bool = True  # the words in one sentence (false: across sentences too)


class Category(_Strict):
    name: CategoryName
    description: str = ""
    terms: list[NonEmpty] = Field(default_factory=list)
    term_files: list[NonEmpty] = Field(default_factory=list)
    patterns: list[NonEmpty] = Field(default_factory=list)
    regexes: list[NonEmpty] = Field(default_factory=list)
    sequences: list[Sequence] = Field(default_factory=list)
    pinyin: bool = False
    allow: list[NonEmpty] = Field(default_factory=list)
    mask: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    action: Actions = Actions()


class AliasRules(_Strict):
    system_prompt: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]
    canary: bool = False


class Overrides(_Strict):
    roles: dict[str, dict[str, PartialActions]] = Field(default_factory=dict)
    keys: dict[str, dict[str, PartialActions]] = Field(default_factory=dict)


class PolicyModel(_Strict):
    version: Literal[1] = 1
    mask: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "*"
    categories: list[Category] = Field(default_factory=list)
    leak: Action = "block"
    aliases: dict[str, AliasRules] = Field(default_factory=dict)
    overrides: Overrides = Overrides()


class Term:
    """One term of a category as written (a file line, an inline term, an expansion)."""

    __slots__ = ("category", "source", "text")

    def __init__(self, category: int, text: str, source: str) -> None:
        self.category, self.text, self.source = category, text, source


class ContentPolicy:
    """A validated content policy; its matcher is built on first use (``matcher_of``)."""

    def __init__(self, model: PolicyModel, terms: list[Term], path: Path | None = None) -> None:
        self.model = model
        self.path = path
        self.categories = model.categories
        self.names = [c.name for c in model.categories]
        self.terms = terms
        self.regexes = [
            (i, re.compile(r, re.IGNORECASE)) for i, c in enumerate(model.categories)
            for r in c.regexes
        ]  # fmt: skip
        self.term_count = len(terms)
        self.compiled: Any = None  # its TermMatcher, once built (matcher.matcher_of)
        self.canaries: dict[str, Any] = {}  # canary -> its TermMatcher (matcher.canary_matcher)

    def mask_of(self, category: str) -> str:
        for c in self.categories:
            if c.name == category:
                return c.mask or self.model.mask
        return self.model.mask

    def actions_for(
        self, roles: Iterable[str] = (), key_prefix: str | None = None
    ) -> dict[str, Actions]:
        """The actions per category for a caller: the category's, then its roles'
        overrides (in name order), then its key's."""
        actions = {c.name: c.action for c in self.categories}
        actions[LEAK_CATEGORY] = Actions(input="allow", output=self.model.leak)
        layers = [self.model.overrides.roles.get(r, {}) for r in sorted(roles)]
        if key_prefix is not None:
            layers.append(self.model.overrides.keys.get(key_prefix, {}))
        for layer in layers:
            for name, partial in layer.items():
                if name in actions:
                    actions[name] = actions[name].model_copy(
                        update={k: v for k, v in partial.model_dump().items() if v is not None}
                    )
        return actions

    def alias_rules(self, alias: str) -> AliasRules | None:
        return self.model.aliases.get(alias)

    def canary_of(self, alias: str, key: bytes) -> str | None:
        """The canary of an alias whose rules ask for one: a token no caller can guess
        (keyed by the appliance's master key), stable while the key is."""
        rules = self.alias_rules(alias)
        if rules is None or not rules.canary:
            return None
        digest = hmac.new(key, alias.encode(), hashlib.sha256).hexdigest()[:16]
        return f"ZC{digest}"


def empty_policy() -> ContentPolicy:
    """What applies without a content.yaml: no categories, every text passes."""
    return ContentPolicy(PolicyModel(), [])


def expand(pattern: str) -> Iterator[str]:
    """``{a|b|}`` alternatives, each group independent: every combination (a group with an
    empty alternative is optional)."""
    parts = re.split(r"(\{[^{}]*\})", pattern)
    if any(("{" in p or "}" in p) and not re.fullmatch(r"\{[^{}]*\}", p) for p in parts):
        raise ValueError("unbalanced or nested braces")
    choices = [p[1:-1].split("|") if p.startswith("{") else [p] for p in parts]
    count = 1
    for c in choices:
        count *= len(c)
    if count > MAX_EXPANSIONS:
        raise ValueError(f"expands to {count} terms (at most {MAX_EXPANSIONS})")
    for combo in itertools.product(*choices):
        text = re.sub(r"\s+", " ", "".join(combo)).strip()
        if text:
            yield text


def load_content_policy(path: Path) -> ContentPolicy:
    """Load and validate, or raise PolicyError naming the file and the line."""
    root = policyfile.compose(path, "content policy")
    data = policyfile.value(root)
    if not isinstance(data, dict):
        raise PolicyError(f"{path}:1: the content policy must be a mapping")
    try:
        model = PolicyModel.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise PolicyError(
            f"{path}:{policyfile.line_of(root, error['loc'])}: {where}: {error['msg']}"
        ) from None

    def fail(loc: tuple[Any, ...], message: str) -> PolicyError:
        return PolicyError(f"{path}:{policyfile.line_of(root, loc)}: {message}")

    names: dict[str, int] = {}
    for i, category in enumerate(model.categories):
        if category.name in names or category.name == LEAK_CATEGORY:
            raise fail(("categories", i, "name"), f"category {category.name!r} is defined twice")
        names[category.name] = i
    terms = _terms(path, model, fail)
    for where, layer in (("roles", model.overrides.roles), ("keys", model.overrides.keys)):
        for owner, per_category in layer.items():
            for name in per_category:
                if name not in names and name != LEAK_CATEGORY:
                    raise fail(("overrides", where, owner, name), f"no category named {name!r}")
    return ContentPolicy(model, terms, path)


def _terms(path: Path, model: PolicyModel, fail: Any) -> list[Term]:

    terms: list[Term] = []
    for i, category in enumerate(model.categories):
        for r, regex in enumerate(category.regexes):
            try:
                re.compile(regex)
            except re.error as exc:
                raise fail(("categories", i, "regexes", r), f"not a valid regex: {exc}") from None
        for t, term in enumerate(category.terms):
            if not _letters(term):
                raise fail(("categories", i, "terms", t), f"term {term!r} has no letters")
            terms.append(Term(i, term, "term"))
        for q, sequence in enumerate(category.sequences):
            for n, part in enumerate(sequence.parts):
                for w, word in enumerate(part):
                    if not _letters(word):
                        loc = ("categories", i, "sequences", q, "parts", n, w)
                        raise fail(loc, f"{word!r} has no letters")
        for a, allowed in enumerate(category.allow):
            if not _letters(allowed):
                raise fail(("categories", i, "allow", a), f"{allowed!r} has no letters")
        for p, pattern in enumerate(category.patterns):
            try:
                terms.extend(Term(i, text, "pattern") for text in expand(pattern))
            except ValueError as exc:
                raise fail(("categories", i, "patterns", p), f"pattern: {exc}") from None
        named = list(enumerate(category.term_files))
        implicit = imported_terms_file(path, category.name)
        if implicit.is_file() and implicit.resolve() not in {
            (path.parent / n).resolve() for n in category.term_files
        }:
            named.append((-1, str(implicit.relative_to(path.parent))))
        for f, name in named:
            file = (path.parent / name).resolve()
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "cannot be read"
                raise fail(("categories", i, "term_files", f), f"{name}: {reason}") from None
            for number, raw in enumerate(lines, 1):
                term = raw.strip()
                if not term or term.startswith("#"):
                    continue
                if len(term) > 512 or not _letters(term):
                    raise PolicyError(f"{file}:{number}: not a term (no letters, or too long)")
                terms.append(Term(i, term, "file"))
        if len(terms) > MAX_TERMS:
            raise fail(("categories", i), f"more than {MAX_TERMS} terms in all")
    return terms


def _letters(term: str) -> bool:
    """Has the term a letter or digit to match (punctuation alone is no term)?"""
    from appliance.content.normalize import squeeze

    return any(c.isalnum() for c in squeeze(term))


IMPORTED_DIR = "terms"  # beside content.yaml: terms/<category>.txt, what the portal imports


def imported_terms_file(path: Path, category: str) -> Path:
    """A category's imported terms (read as one of its term files when it exists)."""
    return path.parent / IMPORTED_DIR / f"{category}.txt"


def term_files(path: Path) -> list[Path]:
    """The term files a content policy reads (for its version: an edit of one is an edit
    of the policy), its categories' imported terms included; none if it cannot be read."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    categories = data.get("categories") if isinstance(data, dict) else None
    files = []
    for category in categories if isinstance(categories, list) else []:
        names = category.get("term_files") if isinstance(category, dict) else None
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str):
                files.append(path.parent / name)
        if isinstance(category, dict) and isinstance(category.get("name"), str):
            files.append(imported_terms_file(path, category["name"]))
    return files


def category_terms(policy: ContentPolicy, name: str) -> list[str]:
    """Every term of a category as written, in the order they were read (export)."""
    if name not in policy.names:
        return []
    index = policy.names.index(name)
    return [t.text for t in policy.terms if t.category == index and t.source != "pattern"]


def read_term_list(text: str) -> tuple[list[str], list[tuple[int, str]], list[tuple[int, str]]]:
    """A term list to import (txt: one a line; csv: the first column): (terms, duplicates
    as (line, term), invalid lines as (line, why))."""
    from appliance.content.normalize import squeeze

    seen: dict[str, int] = {}
    terms: list[str] = []
    duplicates: list[tuple[int, str]] = []
    invalid: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        term = raw.split(",", 1)[0].strip().strip('"') if "," in raw else raw.strip()
        if not raw.strip() or term.startswith("#"):
            continue
        if not term:
            invalid.append((number, "no term in the first column"))
            continue
        if len(term) > 512:
            invalid.append((number, "longer than 512 characters"))
            continue
        key = squeeze(term)
        if not _letters(term):
            invalid.append((number, "no letters or digits"))
            continue
        if key in seen:
            duplicates.append((number, term))
            continue
        seen[key] = number
        terms.append(term)
    return terms, duplicates, invalid
