"""Check digits, dates and number plans: what turns a pattern match into a finding.

Each function takes the value normalised to ASCII (full-width forms folded, separators
removed where the type allows them) and says whether it is a real value of its type.
"""

from __future__ import annotations

import datetime
import ipaddress
from operator import mul

# GB 11643-1999: ISO 7064 MOD 11-2 over the first 17 digits.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_DIGIT_VALUE = {str(d): d for d in range(10)}
# GB 32100-2015: the unified social credit code's alphabet (no I, O, S, V, Z) and weights.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
# Mainland mobile number segments (MIIT numbering plan), by their first three digits.
_MOBILE_PREFIXES = frozenset(
    [f"13{d}" for d in range(10)]
    + ["145", "146", "147", "148", "149"]
    + [f"15{d}" for d in (0, 1, 2, 3, 5, 6, 7, 8, 9)]
    + ["162", "165", "166", "167"]
    + [f"17{d}" for d in range(9)]
    + [f"18{d}" for d in range(10)]
    + [f"19{d}" for d in (0, 1, 2, 3, 5, 6, 7, 8, 9)]
)
# IBAN lengths by country (ISO 13616 registry); a country not listed is not an IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def _valid_date(year: int, month: int, day: int, *, latest: datetime.date | None = None) -> bool:
    try:
        date = datetime.date(year, month, day)
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= date <= (latest or datetime.date.today())


def resident_id(value: str) -> bool:
    """An 18-digit ID with a valid check digit and birth date, or a 15-digit legacy ID."""
    if len(value) == 18:
        if not value[:17].isdigit() or value[0] == "0":
            return False
        total = sum(map(mul, map(_DIGIT_VALUE.__getitem__, value[:17]), _ID_WEIGHTS))
        if _ID_CHECK[total % 11] != value[17].upper():
            return False
        return _valid_date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    if len(value) == 15 and value.isdigit() and value[0] != "0":
        return _valid_date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
    return False


def mobile(digits: str) -> bool:
    """Eleven digits in an allocated mobile segment."""
    return len(digits) == 11 and digits.isdigit() and digits[:3] in _MOBILE_PREFIXES


def landline(area: str, local: str) -> bool:
    """A mainland area code and a 7-8 digit local number. Area codes are 010 and 02x, or
    four digits 03xx-09xx (there is no 01xx but 010, no 02xx)."""
    if not (area.startswith("0") and area.isdigit()):
        return False
    if len(area) == 3:
        if not (area == "010" or area[1] == "2"):
            return False
    elif len(area) != 4 or area[1] in "012":
        return False
    return 7 <= len(local) <= 8 and local.isdigit() and local[0] not in "01"


def luhn(digits: str) -> bool:
    """The Luhn sum: every second digit from the right doubled (its digits added)."""
    value = _DIGIT_VALUE.__getitem__
    total = sum(map(value, digits[-1::-2])) + sum(map(_DOUBLED.__getitem__, digits[-2::-2]))
    return total % 10 == 0


_DOUBLED = {str(d): (2 * d - 9 if d > 4 else 2 * d) for d in range(10)}


def bank_card(digits: str) -> bool:
    """12-19 digits issued by a card network, Luhn. First digits 3-6 (and UnionPay's 8-9
    issues); of the 2-series only Mir (2200-2204) and Mastercard (2221-2720) exist, so a
    date-prefixed order number or timestamp (2024...) is no card whatever its Luhn sum."""
    if not (12 <= len(digits) <= 19 and digits.isdigit() and digits[0] in "2345689"):
        return False
    if digits[0] == "2" and not ("2200" <= digits[:4] <= "2204" or "2221" <= digits[:4] <= "2720"):
        return False
    return luhn(digits)


def ipv4(value: str) -> bool:
    parts = value.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not (p.isdigit() and len(p) <= 3 and int(p) <= 255 and (p == "0" or p[0] != "0")):
            return False
    return True


def ipv6(value: str) -> bool:
    colons = value.count(":")
    if colons < 2:
        return False
    if "::" not in value and colons != 7 and not (colons == 6 and "." in value):
        return False  # eight groups, or six and an IPv4 address, unless :: stands for some
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def uscc(value: str) -> bool:
    """18 characters of the code's alphabet whose last one is the check character."""
    if len(value) != 18 or not value[2:8].isdigit():  # [2:8]: the administrative division
        return False
    values = [_USCC_VALUE.get(ch, -1) for ch in value]
    if -1 in values:
        return False
    return USCC_ALPHABET[(31 - sum(map(mul, values, _USCC_WEIGHTS)) % 31) % 31] == value[17]


def us_ssn(area: str, group: str, serial: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def iban(value: str) -> bool:
    """A known country's length and ISO 7064 MOD 97-10 over the rearranged value."""
    if IBAN_LENGTHS.get(value[:2]) != len(value) or not value[2:4].isdigit():
        return False
    rearranged = value[4:] + value[:4]
    if not rearranged.isalnum():
        return False
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1
