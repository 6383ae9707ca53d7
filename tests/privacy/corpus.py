"""A seeded, labelled corpus of mixed Chinese/English text for the privacy detectors.

``generate(n, seed)`` gives ``n`` sentences, each with the exact code point spans and types
of the personal data in it. Values are realistic and valid by construction (check digits,
real area codes and birth dates, allocated mobile segments, Luhn-valid card numbers of real
networks, IBANs of several countries, ...), written in the ways people write them: grouped
or not, with ``+86``/``0086``, in full-width forms, directly against Chinese characters or
after an English word. Hard negatives look like values but are none: order numbers, wrong
check digits, impossible dates, unallocated mobile segments, long serial numbers with a
valid value inside, version strings, invalid IPs, timestamps, prices and amounts; they
carry no label, so anything found in them counts against precision.

The check digits here are computed independently of ``appliance.privacy.validators`` so
that a test can check the labels with the validators and mean something.

``mixed_text(n_chars, seed)`` builds one long text for throughput: mostly prose without
personal data, about one value per ``VALUE_EVERY`` characters.
"""

from __future__ import annotations

import datetime
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Label = tuple[int, int, str]

# Dictionary terms the corpus uses for CUSTOM (pass them to ``Dictionary``).
CUSTOM_TERMS = (
    "天穹计划",
    "青龙项目",
    "星河银行",
    "华瑞医疗",
    "北极星二期",
    "Project Falcon",
    "Bluebird",
    "Orion-7",
    "Acme Holdings",
    "Kestrel",
)
# How a term is written in the text (the dictionary ignores case for ASCII terms).
_CUSTOM_WRITTEN = {
    "Project Falcon": ("Project Falcon", "project falcon", "PROJECT FALCON"),
    "Bluebird": ("Bluebird", "bluebird", "BLUEBIRD"),
    "Acme Holdings": ("Acme Holdings", "ACME Holdings"),
    "Kestrel": ("Kestrel", "KESTREL"),
}

VALUE_EVERY = 200  # characters of text per value in ``mixed_text``


@dataclass
class Sample:
    text: str
    labels: list[Label] = field(default_factory=list)


# ---------------------------------------------------------------- check digits (independent)

_ID_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_W = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_W = (3, 7, 9, 10, 5, 8, 4, 2)


def id_check(first17: str) -> str:
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, _ID_W, strict=True)) % 11]


def luhn_check(body: str) -> str:
    """The digit that makes ``body + digit`` pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(digits: str) -> bool:
    return luhn_check(digits[:-1]) == digits[-1]


def uscc_check(first17: str) -> str:
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_W, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def org_code(rng: random.Random) -> str:
    """A GB 11714 organisation code: eight characters and its check character."""
    body = "".join(rng.choice("0123456789" * 3 + "ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_W, strict=True))
    check = 11 - total % 11
    return body + ("X" if check == 10 else "0" if check == 11 else str(check))


def iban_check(country: str, bban: str) -> str:
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{98 - number % 97:02d}"


def iban_ok(value: str) -> bool:
    rearranged = value[4:] + value[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def id_ok(value: str) -> bool:
    """An 18-digit ID with a real date and check digit, or a 15-digit legacy one."""
    if len(value) == 18 and value[:17].isdigit() and value[0] != "0":
        return id_check(value[:17]) == value[17].upper() and _date_ok(
            value[6:10], value[10:12], value[12:14]
        )
    if len(value) == 15 and value.isdigit() and value[0] != "0":
        return _date_ok("19" + value[6:8], value[8:10], value[10:12])
    return False


def _date_ok(y: str, m: str, d: str) -> bool:
    try:
        date = datetime.date(int(y), int(m), int(d))
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= date <= datetime.date.today()


def card_like(digits: str) -> bool:
    """Would a card network issue this number? 12-19 digits, an issued first range, Luhn.
    No network issues numbers starting 0, 1, 7 or 20-21 (so date-prefixed order numbers
    and timestamps are not cards); 2 is Mir (2200-2204) and Mastercard (2221-2720)."""
    if not (12 <= len(digits) <= 19 and digits.isdigit()) or digits[0] in "017":
        return False
    if digits[0] == "2" and not ("2200" <= digits[:4] <= "2204" or "2221" <= digits[:4] <= "2720"):
        return False
    return luhn_ok(digits)


# ---------------------------------------------------------------- realistic values


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


AREAS = _words(
    "110101 110105 110108 120101 130102 140105 150102 210102 220102 230102 310101 310104 "
    "310115 320102 320505 330106 340104 350102 360102 370102 370202 410105 420106 430102 "
    "440103 440305 450103 460105 500103 510107 520102 530102 540102 610113 620102 630102 "
    "640104 650102"
)
MOBILE_SEGMENTS = _words(
    "130 131 132 133 134 135 136 137 138 139 145 147 150 151 152 153 155 156 157 158 159 "
    "166 170 171 173 175 176 177 178 180 181 182 183 184 185 186 187 188 189 191 198 199"
)
BAD_SEGMENTS = _words("100 105 110 116 120 123 128 140 141 142 143 144 154 160 161 163 164 168 169")
AREA_CODES_8 = _words("010 020 021 022 023 024 025 027 028 029 0755 0571 0512 0532 0592")
AREA_CODES_7 = _words("0311 0351 0431 0451 0471 0531 0551 0574 0631 0731 0771 0791 0851 0871")
UNIONPAY_BINS = _words("622202 622848 621700 622588 621226 622260 621661 622700 625800 623668")
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
# Country, BBAN layout: n digits, a upper-case letters, c upper-case letters or digits.
IBAN_LAYOUTS = {
    "DE": "18n",
    "GB": "4a14n",
    "FR": "10n11c2n",
    "NL": "4a10n",
    "ES": "20n",
    "IT": "1a10n12c",
    "CH": "5n12c",
    "BE": "12n",
    "AT": "16n",
    "PL": "24n",
}
EMAIL_USERS = _words(
    "zhangsan li.na wang_wei88 chen.xiaoming alice.w bob+news j.smith liu-yang "
    "service01 hr.recruit zhao.lei2021 m.garcia yifan.zhou 13812345678 987654321"
)
EMAIL_DOMAINS = _words(
    "163.com qq.com 126.com gmail.com example.com.cn corp.cn company.com sina.com "
    "mail.tsinghua.edu.cn outlook.com huarui-med.cn bank.example.org"
)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _birth(rng: random.Random, first: int = 1940, last: int = 2008) -> datetime.date:
    start = datetime.date(first, 1, 1).toordinal()
    return datetime.date.fromordinal(rng.randint(start, datetime.date(last, 12, 31).toordinal()))


def resident_id(rng: random.Random) -> str:
    if rng.random() < 0.15:  # the 15-digit legacy ID (born before 2000)
        return rng.choice(AREAS) + _birth(rng, 1935, 1999).strftime("%y%m%d") + _digits(rng, 3)
    body = rng.choice(AREAS) + _birth(rng).strftime("%Y%m%d") + f"{rng.randint(1, 999):03d}"
    check = id_check(body)
    return body + ("x" if check == "X" and rng.random() < 0.2 else check)


def mobile(rng: random.Random) -> str:
    digits = rng.choice(MOBILE_SEGMENTS) + _digits(rng, 8)
    a, b, c = digits[:3], digits[3:7], digits[7:]
    prefix = rng.choice(["", "", "", "+86 ", "+86", "+86-", "0086 ", "86-"])
    sep = rng.choice(["", "", " ", "-"])
    return prefix + sep.join((a, b, c))


def landline(rng: random.Random) -> str:
    if rng.random() < 0.6:
        area, local = rng.choice(AREA_CODES_8), str(rng.randint(2, 9)) + _digits(rng, 7)
    else:
        area, local = rng.choice(AREA_CODES_7), str(rng.randint(2, 9)) + _digits(rng, 6)
    head, tail = local[:-4], local[-4:]
    if rng.random() < 0.1:  # with an extension after a dash (part of the number)
        return f"{area}-{local}-{rng.randint(1, 9999)}"
    form = rng.randrange(7)
    if form == 0:
        return f"{area}-{local}"
    if form == 1:
        return f"({area}) {head} {tail}"
    if form == 2:
        return f"({area}){local}"
    if form == 3:
        return f"{area} {head} {tail}"
    if form == 4:
        return f"{area}-{head}-{tail}"
    if form == 5:  # international form: the trunk 0 is dropped
        return f"+86 {area[1:]} {head} {tail}"
    return f"+86-{area[1:]}-{local}"


def bank_card(rng: random.Random) -> str:
    kind = rng.choices(["unionpay", "visa", "master", "master2", "amex"], [5, 2, 2, 1, 1])[0]
    if kind == "amex":
        body = rng.choice("47") + _digits(rng, 12)
        digits = "3" + body + luhn_check("3" + body)
        return (
            rng.choice([" ", "-"]).join((digits[:4], digits[4:10], digits[10:]))
            if rng.random() < 0.5
            else digits
        )
    if kind == "unionpay":
        length = rng.choice([16, 16, 19])
        body = rng.choice(UNIONPAY_BINS) + _digits(rng, length - 7)
    elif kind == "visa":
        body = "4" + _digits(rng, 14)
    elif kind == "master":
        body = f"5{rng.randint(1, 5)}" + _digits(rng, 13)
    else:
        body = str(rng.randint(2221, 2720)) + _digits(rng, 11)
    digits = body + luhn_check(body)
    if rng.random() < 0.5:
        return digits
    sep = rng.choice([" ", " ", "-"])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def email(rng: random.Random) -> str:
    return f"{rng.choice(EMAIL_USERS)}@{rng.choice(EMAIL_DOMAINS)}"


def ipv4(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        parts = [10, rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)]
    elif kind == 1:
        parts = [172, rng.randint(16, 31), rng.randint(0, 255), rng.randint(1, 254)]
    elif kind == 2:
        parts = [192, 168, rng.randint(0, 255), rng.randint(1, 254)]
    else:
        parts = [rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)]
    return ".".join(map(str, parts))


def ipv6(rng: random.Random) -> str:
    first = rng.choice(["2001:db8", "240e:3a1", "2408:8207", "2409:8a55", "fe80:0", "fd"])
    if first == "fd":  # a unique local address with a random global ID
        first = "fd" + "".join(rng.choice("0123456789abcdef") for _ in range(2)) + ":"
        first += f"{rng.randrange(65536):x}"
    groups = first.split(":") + [f"{rng.randrange(65536):x}" for _ in range(6)]
    if rng.random() < 0.3:  # written out in full
        return ":".join(g.zfill(4) for g in groups)
    cut = rng.randint(2, 5)  # a run of zero groups compressed to ::
    text = ":".join(groups[:cut]) + "::" + ":".join(groups[cut + rng.randint(1, 2) :])
    return text.upper() if rng.random() < 0.1 else text


def ip_address(rng: random.Random) -> str:
    return ipv4(rng) if rng.random() < 0.7 else ipv6(rng)


def passport(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return "E" + _digits(rng, 8)
    if kind == 1:
        return "E" + rng.choice(PLATE_LETTERS) + _digits(rng, 7)
    return "G" + _digits(rng, 8)


def uscc(rng: random.Random) -> str:
    head = rng.choice(["91", "91", "92", "93", "11", "12", "51", "52", "Y1"])
    body = head + rng.choice(AREAS) + org_code(rng)
    return body + uscc_check(body)


def plate(rng: random.Random) -> str:
    province, city = rng.choice(PROVINCES), rng.choice(PLATE_LETTERS[:12])
    sep = rng.choice(["", "", "·", " "])
    kind = rng.randrange(5)
    if kind == 0:  # new-energy small car
        rest = rng.choice("DF") + rng.choice(PLATE_LETTERS + "0123456789") + _digits(rng, 4)
    elif kind == 1:  # new-energy large vehicle
        rest = _digits(rng, 5) + rng.choice("DF")
    elif kind == 2 and province in "粤":
        rest = _digits(rng, 4) + rng.choice("港澳")
    elif kind == 2:
        rest = _digits(rng, 4) + rng.choice("学警挂")
    else:
        chars = [rng.choice("0123456789") for _ in range(5)]
        for i in rng.sample(range(5), rng.choice([0, 0, 1, 2])):
            chars[i] = rng.choice(PLATE_LETTERS)
        rest = "".join(chars)
    return province + city + sep + rest


def us_ssn(rng: random.Random) -> str:
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
    sep = rng.choice(["-", "-", "-", " "])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def iban(rng: random.Random) -> str:
    country = rng.choice(list(IBAN_LAYOUTS))
    bban = ""
    layout = IBAN_LAYOUTS[country]
    number = ""
    for ch in layout:
        if ch.isdigit():
            number += ch
            continue
        pool = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}.get(
            ch, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        )
        bban += "".join(rng.choice(pool) for _ in range(int(number)))
        number = ""
    value = country + iban_check(country, bban) + bban
    if rng.random() < 0.5:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def custom(rng: random.Random) -> str:
    term = rng.choice(CUSTOM_TERMS)
    return rng.choice(_CUSTOM_WRITTEN.get(term, (term,)))


VALUES = {
    "CN_RESIDENT_ID": resident_id,
    "CN_PHONE": mobile,
    "CN_LANDLINE": landline,
    "BANK_CARD": bank_card,
    "EMAIL": email,
    "IP_ADDRESS": ip_address,
    "CN_PASSPORT": passport,
    "CN_USCC": uscc,
    "CN_LICENSE_PLATE": plate,
    "US_SSN": us_ssn,
    "IBAN": iban,
    "CUSTOM": custom,
}

# Characters full-width typing turns into their full-width forms.
_FULL = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {" ": "\u3000"}


def full_width(text: str, digits_only: bool = False) -> str:
    if digits_only:
        return "".join(_FULL[c] if c.isdigit() else c for c in text)
    return "".join(_FULL.get(c, c) for c in text)


# ---------------------------------------------------------------- hard negatives


def _unambiguous(value: str) -> bool:
    """Not a value of any type read as a whole (resampled otherwise: a negative that is also
    a valid card number, say, is a card number whatever the generator meant by it)."""
    compact = "".join(c for c in value if c not in " -")
    if compact.isdigit():
        if id_ok(compact) or card_like(compact):
            return False
        if len(compact) == 11 and compact[:3] in MOBILE_SEGMENTS:
            return False
    return not (
        len(compact) == 18
        and all(c in USCC_CHARS for c in compact)
        and uscc_check(compact[:17]) == compact[17]
    )


def _order_number(rng: random.Random) -> str:
    day = _birth(rng, 2019, 2025).strftime("%Y%m%d")
    kind = rng.randrange(4)
    if kind == 0:
        return day + _digits(rng, rng.randint(6, 12))
    if kind == 1:
        return rng.choice(["DD", "PO", "JD", "TB", "SO-", "NO."]) + day + _digits(rng, 6)
    if kind == 2:  # express tracking numbers
        return rng.choice(["SF", "YT", "JDX", "ZTO"]) + _digits(rng, rng.randint(12, 13))
    return day + rng.choice(["-", ""]) + _digits(rng, 4) + rng.choice(["-", ""]) + _digits(rng, 6)


def _bad_id_check(rng: random.Random) -> str:
    body = rng.choice(AREAS) + _birth(rng).strftime("%Y%m%d") + f"{rng.randint(1, 999):03d}"
    good = id_check(body)
    return body + rng.choice([c for c in "0123456789X" if c != good])


def _bad_id_date(rng: random.Random) -> str:
    y, m, d = rng.choice(
        [
            (1990, 2, 30),
            (1987, 4, 31),
            (1999, 13, 1),
            (2001, 0, 12),
            (1975, 6, 0),
            (1968, 11, 32),
            (2031, 5, 5),
            (1850, 1, 1),
            (1993, 2, 29),
        ]
    )
    body = rng.choice(AREAS) + f"{y:04d}{m:02d}{d:02d}" + f"{rng.randint(1, 999):03d}"
    if rng.random() < 0.2:  # legacy form
        return body[:6] + body[8:14] + body[14:17]
    return body + id_check(body)


def _bad_card(rng: random.Random) -> str:
    card = "".join(c for c in bank_card(rng) if c.isdigit())
    bad = card[:-1] + rng.choice([d for d in "0123456789" if d != card[-1]])
    if rng.random() < 0.5:
        return " ".join(bad[i : i + 4] for i in range(0, len(bad), 4))
    return bad


def _bad_mobile(rng: random.Random) -> str:
    digits = rng.choice(BAD_SEGMENTS) + _digits(rng, 8)
    if rng.random() < 0.3:
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    return rng.choice(["", "", "+86 "]) + digits


def _serial_with_value(rng: random.Random) -> str:
    inner = rng.choice(
        [
            mobile(rng).replace(" ", "").replace("-", "").replace("+86", "").replace("0086", ""),
            resident_id(rng),
            "".join(c for c in bank_card(rng) if c.isdigit()),
            passport(rng),
            ipv4(rng).replace(".", ""),
        ]
    )
    if inner.startswith("86") and len(inner) == 13:
        inner = inner[2:]
    kind = rng.randrange(4)
    if kind == 0:
        return _digits(rng, rng.randint(1, 3)) + inner + _digits(rng, rng.randint(1, 4))
    if kind == 1:
        return rng.choice(["SN", "A", "X9", "KEY"]) + inner
    if kind == 2:
        return inner + rng.choice(["A", "x", "B7", "ZZ"])
    # Not "id": a letter ends a run of digits, so id + 11 digits is a labelled number.
    return rng.choice(["sn", "ref", "No"]) + inner + _digits(rng, 2)


def _version(rng: random.Random) -> str:
    kind = rng.randrange(6)
    a, b, c, d = rng.randint(0, 20), rng.randint(0, 30), rng.randint(0, 200), rng.randint(0, 99)
    if kind == 0:
        return f"v{a}.{b}.{c}.{d}"
    if kind == 1:
        return f"{a}.{b}.{c}"
    if kind == 2:
        return f"{a}.{b}.{c}.{d}.{rng.randint(0, 9)}"
    if kind == 3:  # a Windows build number
        return f"10.0.{rng.randint(10240, 26100)}.{rng.randint(1, 5000)}"
    if kind == 4:
        return f"{a}.{b}.{c}-{d}-amd64"
    return f"V{a}.{b}R{c:03d}C{d:02d}"


def _bad_ip(rng: random.Random) -> str:
    p = [rng.randint(0, 255) for _ in range(4)]
    kind = rng.randrange(5)
    if kind == 0:
        p[rng.randrange(4)] = rng.randint(256, 999)
        return ".".join(map(str, p))
    if kind == 1:
        return ".".join(map(str, p[:3]))
    if kind == 2:
        return ".".join(map(str, [*p, rng.randint(0, 255)]))
    if kind == 3:
        return f"{p[0]}.{p[1]}.0{rng.randint(1, 99)}.{p[3]}"
    return ":".join(f"{rng.randrange(256):02X}" for _ in range(6))  # a MAC address


def _timestamp(rng: random.Random) -> str:
    moment = datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=rng.randrange(170_000_000))
    kind = rng.randrange(6)
    if kind == 0:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if kind == 1:
        return moment.strftime("%Y%m%d%H%M%S")
    if kind == 2:
        return str(int(moment.timestamp()))
    if kind == 3:
        return str(int(moment.timestamp() * 1000))
    if kind == 4:
        return moment.strftime("%Y-%m-%dT%H:%M:%S+08:00")
    return moment.strftime("%Y/%m/%d %H:%M")


def _amount(rng: random.Random) -> str:
    n = rng.randint(1, 99_999_999)
    kind = rng.randrange(6)
    if kind == 0:
        return f"¥{n:,}.{rng.randint(0, 99):02d}"
    if kind == 1:
        return f"{n:,}元"
    if kind == 2:
        return f"${n / 100:,.2f}"
    if kind == 3:
        return f"{n / 100:.2f}"
    if kind == 4:
        return f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%"
    return f"USD {n:,}"


def _bad_checked(rng: random.Random) -> str:
    """A USCC, IBAN or SSN whose check or rules fail."""
    kind = rng.randrange(4)
    if kind == 0:
        value = uscc(rng)
        return value[:-1] + rng.choice([c for c in USCC_CHARS if c != value[-1]])
    if kind == 1:
        value = iban(rng).replace(" ", "")
        bad = value[:2] + f"{(int(value[2:4]) + rng.randint(1, 50)) % 97 + 2:02d}" + value[4:]
        if iban_ok(bad):
            bad = value[:-1] + str((int(value[-1], 36) + 1) % 10)
        return " ".join(bad[i : i + 4] for i in range(0, len(bad), 4))
    if kind == 2:
        return rng.choice(["666", "000", "900", "987"]) + f"-{rng.randint(1, 99):02d}-1234"
    return f"{rng.randint(1, 665):03d}-00-{rng.randint(1, 9999):04d}"


def _other_number(rng: random.Random) -> str:
    """Phone-like numbers that are not mainland mobiles or landlines, and near-words."""
    kind = rng.randrange(6)
    if kind == 0:
        return f"400-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    if kind == 1:
        # No US number either: a North American area code never starts with 0 or 1.
        return f"+1 {rng.randint(100, 199)} 555 {rng.randint(1000, 9999)}"
    if kind == 2:
        return rng.choice(["95588", "95555", "12306", "10086", "114"])
    if kind == 3:
        return rng.choice(["Bluebirds", "Orion-72", "Kestrels"])
    if kind == 4:
        return "E" + _digits(rng, rng.choice([6, 7, 10]))
    return f"{rng.randint(1, 12)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}"


NEGATIVES = (
    _order_number,
    _bad_id_check,
    _bad_id_date,
    _bad_card,
    _bad_mobile,
    _serial_with_value,
    _version,
    _bad_ip,
    _timestamp,
    _amount,
    _bad_checked,
    _other_number,
)


def value(rng: random.Random, kind: str) -> str:
    """A value of ``kind`` that no type earlier in the detectors' order also reads it as (a
    15-digit Amex number that is also a valid legacy ID is an ID to anyone)."""
    while True:
        text = VALUES[kind](rng)
        compact = "".join(c for c in text if c.isalnum())
        if kind in ("BANK_CARD", "CN_USCC") and id_ok(compact):
            continue
        return text


def hard_negative(rng: random.Random) -> str:
    while True:
        value = rng.choice(NEGATIVES)(rng)
        if _unambiguous(value):
            return value


# ---------------------------------------------------------------- sentences

_LEADS: dict[str, tuple[list[str], list[str]]] = {
    "CN_RESIDENT_ID": (
        _words("身份证号|身份证|证件号码|公民身份号码为|身份证号码是", "|"),
        _words("ID|ID card no.|Resident ID", "|"),
    ),
    "CN_PHONE": (
        _words("手机|电话|手机号|联系电话|请拨打|紧急联系人", "|"),
        _words("Mobile|phone|call|Tel|WhatsApp", "|"),
    ),
    "CN_LANDLINE": (
        _words("座机|办公电话|固话|总机|传真|前台电话", "|"),
        _words("Office|Fax|Landline|Tel|switchboard", "|"),
    ),
    "BANK_CARD": (
        _words("银行卡号|卡号|收款账号|信用卡|借记卡", "|"),
        _words("card|Card number|Visa|account|pay with", "|"),
    ),
    "EMAIL": (
        _words("邮箱|电子邮件|发送至|抄送|联系邮箱", "|"),
        _words("email|Email|contact|cc|write to", "|"),
    ),
    "IP_ADDRESS": (
        _words("IP地址|服务器|来源IP|登录地址|网关", "|"),
        _words("host|from|server|IP|peer", "|"),
    ),
    "CN_PASSPORT": (
        _words("护照号|护照|护照号码为|证件", "|"),
        _words("passport|Passport No.|travel document", "|"),
    ),
    "CN_USCC": (
        _words("统一社会信用代码|信用代码|税号|企业代码", "|"),
        _words("USCC|company code|tax ID", "|"),
    ),
    "CN_LICENSE_PLATE": (
        _words("车牌|车牌号|车辆|停车位上的", "|"),
        _words("plate|car|vehicle", "|"),
    ),
    "US_SSN": (
        _words("社会安全号|SSN|美国社保号", "|"),
        _words("SSN|Social Security number|SSN#", "|"),
    ),
    "IBAN": (_words("IBAN|国际银行账号|收款IBAN|汇至", "|"), _words("IBAN|wire to|account", "|")),
    "CUSTOM": (_words("项目|关于|客户|参与了", "|"), _words("project|client|about|the", "|")),
    "NEGATIVE": (
        _words("订单号|版本|编号|时间|金额|序列号|单号|流水号|型号|号码|地址", "|"),
        _words("order|version|serial|at|total|ref|build|No.", "|"),
    ),
}
_ZH_AFTER = [
    "转8001。",
    "，请核实。",
    "。",
    "，谢谢！",
    "的记录已更新。",
    "；",
    "，已登记",
    "）",
    "，尽快处理。",
    "吗？",
    "已过期",
]
_EN_AFTER = [".", ", thanks.", " today.", ";", " - please check.", "?", " and more.", ")"]
_FILLER = [
    "会议改到下午三点，地点在三楼会议室。",
    "请于本周五前提交季度报告。",
    "系统将在今晚 23:00 进行例行维护，预计持续 2 小时。",
    "2024年第三季度营收同比增长12.5%，净利润为3.2亿元。",
    "客户反馈新版本的响应速度明显提升。",
    "根据《个人信息保护法》第13条，处理个人信息应当取得个人同意。",
    "本次培训共有 45 人参加，满意度为 96%。",
    "The quarterly review has been moved to Thursday at 10 am.",
    "Please find attached the minutes of the meeting.",
    "Our team closed 27 tickets last week, up from 19.",
    "The model was fine-tuned for 3 epochs with a learning rate of 2e-5.",
    "大模型的推理延迟从 850 ms 降到了 320 ms。",
    "如有疑问，请在工作时间内联系我们的客服团队。",
    "项目预算为 1,200,000 元，已完成 63%。",
    "下周一上午九点半在 B 座 502 开项目启动会。",
    "服务器机房温度保持在 22 度左右，湿度 45%。",
    "We shipped release 4.2 on May 6 and rolled it out to 30% of users.",
    "合同第 7 条第 2 款约定了违约责任。",
    "员工需在 2025 年 3 月 31 日前完成年度安全培训。",
    "The API returned HTTP 503 for 2 minutes during the failover test.",
    "仓库里还有 1,250 件库存，预计月底售罄。",
    "请把 Q3 的销售数据按地区汇总后发给我。",
    "会议纪要见附件，共 12 页。",
    "Batch size 64, sequence length 4096, 8 GPUs.",
    "今天北京晴，最高气温 31℃，最低 19℃。",
    "Shipment ETA is 14:30; gate 7, dock B.",
    "本季度我们在华东地区新签了 18 家客户。",
    "The invoice total is $12,480.00 including 6% VAT.",
]


def _lead(rng: random.Random, kind: str, zh: bool) -> str:
    words = _LEADS[kind][0 if zh else 1]
    return rng.choice(words)


def _joiner(rng: random.Random, lead: str, zh: bool) -> str:
    if lead[-1].isascii() and lead[-1].isalnum():
        return rng.choice([" ", ": ", ":", " : "] if not zh else [" ", ":", "：", " "])
    if zh:
        return rng.choice(["", "", "", "：", ":", "是", "为", " ", "（"])
    return rng.choice([" ", ": ", " "])


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.labels: list[Label] = []

    def add(self, text: str, label: str | None = None) -> None:
        if label is not None:
            self.labels.append((self.length, self.length + len(text), label))
        self.parts.append(text)
        self.length += len(text)

    def sample(self) -> Sample:
        return Sample("".join(self.parts), self.labels)


def _clause(rng: random.Random, b: _Builder, kind: str, zh: bool) -> None:
    """A lead-in, the value (or a hard negative), and what follows it."""
    lead = _lead(rng, kind, zh)
    last = next((part[-1] for part in reversed(b.parts) if part), "")
    if last.isascii() and last.strip() and lead[0].isascii():
        b.add(" ")  # "... a@b.com. Also", never "a@b.com.Also"
    b.add(lead)
    joiner = _joiner(rng, lead, zh)
    b.add(joiner)
    if kind == "NEGATIVE":
        text = hard_negative(rng)
        if rng.random() < 0.1 and text.isascii():
            text = full_width(text, digits_only=rng.random() < 0.5)
        b.add(text)
    else:
        text = value(rng, kind)
        if kind != "CUSTOM" and rng.random() < 0.12:
            text = full_width(text, digits_only=rng.random() < 0.5)
        b.add(text, kind)
    after = rng.choice(_ZH_AFTER if zh else _EN_AFTER)
    if joiner.endswith("（") and zh:
        after = "）" + after.lstrip("）")
    b.add(after)


def sentence(rng: random.Random, kinds: list[str]) -> Sample:
    b = _Builder()
    zh = rng.random() < 0.65
    if rng.random() < 0.3:
        b.add(
            rng.choice(
                ["客户", "张经理", "李女士", "王先生", "财务部", "运维"]
                if zh
                else ["Hi,", "Note:", "FYI", "Customer"]
            )
        )
        b.add("" if zh else " ")
    for i, kind in enumerate(kinds):
        if i:
            b.add(
                rng.choice(["另外", "以及", "备用", "", "和"] if zh else [" Also ", " and ", " / "])
            )
        _clause(rng, b, kind, zh if rng.random() < 0.8 else not zh)
    return b.sample()


def generate(n_sentences: int, seed: int) -> list[Sample]:
    """``n_sentences`` sentences, each with one to three values or hard negatives."""
    rng = random.Random(seed)
    types = list(VALUES)
    out = []
    for _ in range(n_sentences):
        kinds = [
            "NEGATIVE" if rng.random() < 0.3 else rng.choice(types)
            for _ in range(rng.choice([1, 1, 2, 2, 3]))
        ]
        out.append(sentence(rng, kinds))
    return out


_DIGIT_RUN = re.compile(r"[0-9]+")


def _same_length_number(rng: random.Random, digits: str) -> str:
    if len(digits) == 1:
        return str(rng.randint(1, 9))
    return str(rng.randint(1, 9)) + _digits(rng, len(digits) - 1)


def mixed_text(n_chars: int, seed: int) -> Sample:
    """One long text of about ``n_chars`` code points: prose with about one value (or hard
    negative) per ``VALUE_EVERY`` characters, most of it Chinese."""
    rng = random.Random(seed)
    types = list(VALUES)
    b = _Builder()
    next_value = 0
    while b.length < n_chars:
        if b.length >= next_value:
            s = sentence(rng, ["NEGATIVE" if rng.random() < 0.3 else rng.choice(types)])
            base = b.length
            b.add(s.text)
            b.labels += [(base + s_, base + e, t) for s_, e, t in s.labels]
            next_value = b.length + rng.randint(VALUE_EVERY // 2, VALUE_EVERY * 3 // 2)
        else:
            b.add(_DIGIT_RUN.sub(lambda m: _same_length_number(rng, m[0]), rng.choice(_FILLER)))
        b.add(rng.choice([" ", "\n"] if b.parts[-1][-1].isascii() else ["", "", " ", "\n"]))
    return b.sample()


def score(
    samples: Iterable[Sample], find: Callable[[str], Iterable[tuple[int, int, str]]]
) -> dict[str, tuple[int, int, int]]:
    """Per type: true positives, false positives, false negatives, on exact spans."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for sample in samples:
        found, gold = set(find(sample.text)), set(sample.labels)
        tp.update(t for _s, _e, t in found & gold)
        fp.update(t for _s, _e, t in found - gold)
        fn.update(t for _s, _e, t in gold - found)
    return {t: (tp[t], fp[t], fn[t]) for t in sorted(set(tp) | set(fp) | set(fn))}


def precision_recall(counts: tuple[int, int, int]) -> tuple[float, float]:
    tp, fp, fn = counts
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)
