"""Why the scanner took a value, and why it did not take one a reader expected.

``explain(policy, text)`` lists every finding the policy acts on with its type, span,
score, the check that validated it and the context rules that raised or lowered it; then
the findings a context rule or ``min_score`` dropped ("lowered -0.60 by keyword 订单号 6
chars before"); then the runs of digits that look like a value but are none, with the
reason ("check digit wrong", "Luhn check fails", "part of a longer number"). It is for
people (``appliance privacy scan --explain``, the portal's "try it" box): it runs the
detectors again and reads their rules, so it is slower than ``PrivacyPolicy.find``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from appliance.privacy import validators as v
from appliance.privacy.context import Adjustment
from appliance.privacy.detectors import DIGIT_CLASS as _D
from appliance.privacy.detectors import SERIAL_PREFIXES, WEAK, ZERO_WIDTH, Finding, fold
from appliance.privacy.findings import find
from appliance.privacy.policy import PrivacyPolicy

# The check each type's values pass, as a reader would name it.
VALIDATORS = {
    "CN_RESIDENT_ID": "GB 11643 birth date and check digit",
    "CN_PHONE": "mainland mobile number in an allocated segment",
    "CN_LANDLINE": "mainland area code and local number",
    "BANK_CARD": "card network issuer digit and Luhn (ISO/IEC 7812)",
    "EMAIL": "address shape (local part @ domain with a top-level domain)",
    "IP_ADDRESS": "IPv4 / IPv6 address (Python ipaddress)",
    "CN_PASSPORT": "passport number pattern (E/G/D/S/P/H series)",
    "CN_USCC": "GB 32100 check character",
    "CN_LICENSE_PLATE": "province and plate pattern (GA 36)",
    "US_SSN": "SSA area, group and serial rules",
    "IBAN": "country length and ISO 7064 MOD 97-10",
    "CUSTOM": "policy dictionary term",
    "PERSON": "name: surname and given name, with context",
    "ADDRESS": "postal address: administrative divisions, road and number",
    "US_PHONE": "North American numbering plan",
}
_LETTERS_BEFORE = re.compile(r"[A-Za-z]+\Z")
WEAK_VALIDATOR = "shape only: eleven digits like a mobile, segment not allocated"
# A run of digits, across the separators values are written with, maybe ending in an X.
_RUN = re.compile(rf"[{_D}](?:[ .\-\u3000{ZERO_WIDTH}]?[{_D}])*[Xx\uff38\uff58]?")


@dataclass(frozen=True)
class Explanation:
    start: int
    end: int
    type: str  # "?" for a run that matches no type
    taken: bool
    score: float
    validator: str
    context: tuple[Adjustment, ...] = ()
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "type": self.type,
            "taken": self.taken,
            "score": round(self.score, 2),
            "validator": self.validator,
            "context": [a.describe() for a in self.context],
            "reason": self.reason,
        }

    def line(self, text: str) -> str:
        """One line for a terminal or a page."""
        value = text[self.start : self.end]
        head = f"{'taken' if self.taken else 'not taken'} {self.type} [{self.start}:{self.end}]"
        parts = [f"{head} {value!r} score {self.score:.2f}", self.validator]
        parts += [a.describe() for a in self.context]
        if self.reason:
            parts.append(self.reason)
        return "; ".join(p for p in parts if p)


def explain(policy: PrivacyPolicy, text: str) -> list[Explanation]:
    custom = policy.dictionary.find(text) if policy.dictionary else None
    raw = find(text, custom, weak=True)
    taken = {(f.start, f.end, f.type) for f in policy.find(text)}
    context, min_score = policy.context, policy.context.min_score
    out: list[Explanation] = []
    for f in raw:
        adjustments = tuple(context.adjustments(text, f)) if context else ()
        score = min(1.0, max(0.0, f.score + sum(a.rule.adjust for a in adjustments)))
        is_taken = (f.start, f.end, f.type) in taken
        validator = WEAK_VALIDATOR if f.score <= WEAK else VALIDATORS.get(f.type, "")
        reason = "" if is_taken else f"score {score:.2f} is under min_score {min_score:.2f}"
        if not is_taken and f.score <= WEAK and not adjustments:
            reason += " (no label such as 手机号, 联系电话 or Tel before it)"
        out.append(
            Explanation(f.start, f.end, f.type, is_taken, score, validator, adjustments, reason)
        )
    out += _near_misses(text, raw)
    return sorted(out, key=lambda e: (e.start, e.end))


def _near_misses(text: str, found: list[Finding]) -> list[Explanation]:
    """Runs of seven or more digits (with the separators values are written with) that no
    finding covers, with the reason each type's check gave."""
    misses = []
    for run in _RUN.finditer(text):
        start, end = run.span()
        if any(f.start < end and start < f.end for f in found):
            continue
        digits = fold(run[0]).translate(str.maketrans("", "", " .-" + ZERO_WIDTH))
        if len(digits) < 7:
            continue
        kind, reason = _why_not(digits)
        letters = _LETTERS_BEFORE.search(text, 0, start)
        if letters and letters[0].lower() in SERIAL_PREFIXES:
            reason = f"glued to {letters[0]!r}, a serial or reference prefix ({reason})"
        elif letters or (end < len(text) and fold(text[end]).isalnum()):
            reason = f"part of a longer run of digits and letters ({reason})"
        misses.append(
            Explanation(start, end, kind, False, 0.0, VALIDATORS.get(kind, ""), (), reason)
        )
    return misses


def _why_not(digits: str) -> tuple[str, str]:
    n = len(digits)
    if n in (15, 18) and digits[:-1].isdigit():
        if n == 18 and not v._valid_date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14])):
            return "CN_RESIDENT_ID", "birth date invalid"
        if not v.resident_id(digits.upper()):
            return "CN_RESIDENT_ID", "check digit wrong"
    if n == 11 and digits[0] == "1":
        return "CN_PHONE", f"segment {digits[:3]} is not an allocated mobile segment"
    if 12 <= n <= 19 and digits.isdigit():
        if digits[0] not in "2345689":
            return "BANK_CARD", f"no card network issues numbers starting with {digits[0]}"
        if not v.luhn(digits):
            return "BANK_CARD", "Luhn check fails"
        return "BANK_CARD", "Luhn passes, but it is not written as a card number"
    return "?", f"{n} digits: the length of no type"
