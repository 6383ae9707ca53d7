"""ADDRESS and US_PHONE: Chinese addresses (validated against the administrative
divisions), English street addresses, and North American phone numbers (one scan for
where a phone or a street address may start)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from appliance.privacy.detectors import Finding
from appliance.privacy.entities.tables import (
    _ADDR_STOP,
    _ADMIN_SUFFIXES,
    _ESTATE_SUFFIXES,
    _NUM_UNITS,
    _ROAD_SUFFIXES,
    _TOWN_SUFFIXES,
    _alt,
    _class_without,
    _Tables,
    _words,
)

_PLACE_CLASS = _class_without(0x3400, 0x9FFF, _ADDR_STOP)
_PLACE_RUN = re.compile(f"[{_PLACE_CLASS}]{{1,12}}$")
_ESTATE_GAP = re.compile(r"[\u4e00-\u9fffA-Za-z]{1,10}")
_GAP_OK = re.compile(f"[ \u3000]?[{_PLACE_CLASS}]{{0,12}}")
_KIND = {
    **{s: "admin" for s in _ADMIN_SUFFIXES},
    **{s: "town" for s in _TOWN_SUFFIXES},
    **{s: "road" for s in _ROAD_SUFFIXES},
    **{s: "estate" for s in _ESTATE_SUFFIXES},
}
_UNIT_SET = frozenset(_NUM_UNITS)
# Suffixes and units in one scan; a unit counts after a number (looked for backwards).
_ADDR_WORDS = re.compile(_alt([*_KIND, *_NUM_UNITS]))
_NUM_BEFORE = re.compile(
    r"(?:[0-9０-９]+[A-Za-zＡ-Ｚ]?(?:[-－][0-9０-９]+)?|[A-Za-zＡ-Ｚ][0-9０-９]*"
    r"|[一二三四五六七八九十百零〇两]+)$"
)
# Where an address may be: a number with a unit (88号, 501室, 3幢), or an address label.
_ADDR_ANCHORS = (
    re.compile(
        r"[号室栋幢弄单省市区县](?:(?<=[0-9０-９A-Za-z].)"
        rf"|(?<=[省市区县])(?=[{_PLACE_CLASS}]{{1,6}}?[区县市旗路街镇乡道村]))"
    ),
    re.compile(r"地址|住址|家住|住在|现住|居住|户籍|寄往|送至|寄至|发往|位于|坐落"),
)
_ADDR_LABEL = re.compile(
    r"(?:地址|住址|家住|住在|现住|居住地|居住在|户籍地|户籍|寄往|送至|寄至|发往|位于|坐落于|坐落在"
    r"|地点|Address|address)[:：\s]*$"
)
_ROOM_TAIL = re.compile(r"[0-9０-９]{3,4}(?![0-9０-９])")
_WEAK_START = frozenset("来去往向自由经过就也还再又")

_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH"
    "|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI|AS|MP"
)
# USPS Publication 28, appendix C1: the street suffixes a US address may end its street
# name with, and their standard abbreviations.
USPS_SUFFIXES = "|".join(
    sorted(
        set(
            _words(
                """Allee Aly Annex Anx Arcade Arc Bayou Byu Beach Bch Bend Bnd Bluff Blf Bluffs Blfs
            Bottom Btm Branch Br Bridge Brg Brook Brk Brooks Brks Burg Bg Burgs Bgs Bypass Byp
            Camp Cp Canyon Cyn Cape Cpe Causeway Cswy Center Ctr Centers Ctrs Circles Cirs
            Cliff Clf Cliffs Clfs Club Clb Common Cmn Commons Cmns Corner Cor Corners Cors
            Course Crse Courts Cts Cove Cv Coves Cvs Creek Crk Crest Crst Xing Crossroad Xrd
            Crossroads Xrds Curve Curv Dale Dl Dam Dm Divide Dv Drives Drs Estate Est Estates
            Ests Expy Extension Ext Extensions Exts Fall Falls Fls Ferry Fry Field Fld Fields
            Flds Flat Flt Flats Flts Ford Frd Fords Frds Forest Frst Forge Frg Forges Frgs Fork
            Frk Forks Frks Fort Ft Fwy Garden Gdn Gdns Gateway Gtwy Glen Gln Glens Glns Grn
            Greens Grns Grv Groves Grvs Harbor Hbr Harbors Hbrs Haven Hvn Heights Hts Hl Hills
            Hls Hollow Holw Inlet Inlt Island Is Islands Iss Isle Junction Jct Junctions Jcts
            Key Ky Keys Kys Knoll Knl Knolls Knls Lake Lk Lakes Lks Land Landing Lndg Light Lgt
            Lights Lgts Loaf Lf Lock Lck Locks Lcks Lodge Ldg Mall Manor Mnr Manors Mnrs Meadow
            Mdw Meadows Mdws Mill Ml Mills Mls Mission Msn Motorway Mtwy Mount Mt Mountain Mtn
            Mountains Mtns Neck Nck Orchard Orch Oval Overpass Opas Park Parks Parkways Pass
            Passage Psge Pine Pne Pines Pnes Plain Pln Plains Plns Plz Point Pt Points Pts Port
            Prt Ports Prts Prairie Pr Radial Radl Ramp Ranch Rnch Rapid Rpd Rapids Rpds Rest Rst
            Ridge Rdg Ridges Rdgs River Riv Roads Rds Route Rte Rue Run Shoal Shl Shoals Shls
            Shore Shr Shores Shrs Skyway Skwy Spring Spg Springs Spgs Spur Spurs Squares Sqs
            Station Sta Stravenue Stra Stream Strm Streets Sts Summit Smt Throughway Trwy Trace
            Trce Track Trak Trafficway Trfy Trailer Trlr Tunnel Tunl Tpke Underpass Upas Union
            Un Unions Uns Valley Vly Valleys Vlys Via Viaduct Vdct View Vw Views Vws Village
            Vlg Villages Vlgs Ville Vl Vista Vis Walks Wall Ways Well Wl Wells Wls"""
            )
        ),
        key=len,
        reverse=True,
    )
)
_STREET_TYPES = (
    "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Square"
    "|Sq|Terrace|Ter|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Trl|Plaza|Row|Close"
    "|Crescent|Cres|Mews|Grove|Walk|Alley|Expressway|Freeway|Turnpike|Pike|Loop|Path|Crossing"
    "|Gardens|Hill|Green|Quay|Wharf|Embankment|" + USPS_SUFFIXES
)
_EN_STREET = re.compile(
    r"[0-9](?<![0-9A-Za-z#$.,/-][0-9])"
    r"(?:[0-9]{0,5}[A-Z]?(?:-[0-9]{1,5})?|[0-9]{0,5}[a-z](?![a-z]))[ ]+"
    r"(?:(?:(?:[NSEW]\.?|North|South|East|West)[ ]+)?"
    r"(?:[A-Z][A-Za-z'’.-]*|[0-9]{1,3}(?:st|nd|rd|th))"
    r"(?:[ ]+(?:[A-Z][A-Za-z'’-]*|[0-9]{1,3}(?:st|nd|rd|th))){0,3}?"
    rf"[ ]+(?:{_STREET_TYPES})\b\.?(?:[ ]+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?"
    r"|(?:(?:[NSEW]\.?|North|South|East|West)[ ]+)?Broadway\b)"
)
_EN_UNIT = re.compile(
    r",?[ ]+(?:Suite|Ste|Apt|Apartment|Unit|Floor|Fl|Room|Rm|Bldg|Building|#)\.?[ ]*#?[0-9A-Za-z-]+"
)
_EN_CITY = re.compile(r",[ ]*(?:[A-Z][A-Za-z.'’-]*(?:[ ][A-Z][A-Za-z.'’-]*){0,2})")
_EN_STATE_ZIP = re.compile(
    rf",?[ ]+(?:(?:{_US_STATES})(?:[ ]+[0-9]{{5}}(?:-[0-9]{{4}})?)?(?![A-Za-z0-9])"
    r"|[0-9]{5}(?:-[0-9]{4})?(?![0-9])"
    r"|[A-Z]{1,2}[0-9][A-Z0-9]?[ ][0-9][A-Z]{2}(?![A-Za-z0-9]))"
)
_EN_COUNTRY = re.compile(
    r",[ ]*(?:USA|U\.S\.A\.|US|U\.S\.|United States|UK|U\.K\.|United Kingdom|England|Scotland"
    r"|Wales|Canada|Australia|Ireland)(?![A-Za-z])"
)
_EN_STREET_AFTER_OK = re.compile(
    r"$|[,.;:)\]\n\r!?]|[ ]+(?:in|and|near|or|on|at|with|for|to|is|was|next|by|opposite|from"
    r"|Suite|Ste|Apt|Unit|Floor|Room|#)\b|[ ]*[\u3000-\u303f\uff00-\uffef]|[ ]*[\u3400-\u9fff]"
)

# ------------------------------------------------------------------ US phone

# The scan starts at the area code (C skips everything up to a digit from 2 to 9); the
# prefix (+1, a parenthesis) and the edges are checked in Python.
# NANP: an exchange does not start with 0 or 1 either, so the common placeholder
# (555) 123-4567 is not a number. Set False to take exchanges from 100 (N11 still excluded).
STRICT_EXCHANGE = False  # (555) 123-4567 is how people write US numbers
_EXCHANGE = "[2-9][0-9]{2}" if STRICT_EXCHANGE else "[0-9]{3}"
_US_PHONE = re.compile(
    rf"[2-9](?<![0-9][2-9])[0-8][0-9](?P<paren>\)[ ]?|[-. ]){_EXCHANGE}[-. ][0-9]{{4}}"
    r"(?![0-9A-Za-z\uff10-\uff19]|[-.][0-9])"
)
_DIGIT_LEAD = re.compile(
    r"[0-9](?<![0-9A-Za-z][0-9])"
    rf"(?:(?P<phone>(?=[0-9]{{2}}(?:\)[ ]?|[-. ]){_EXCHANGE}[-. ][0-9]{{4}}(?![0-9])))"
    # (a street's name, its direction or Broadway starts with a capital, or it is an
    # ordinal, 5th: only there can _EN_STREET match)
    r"|(?P<street>(?=[0-9]{0,5}[A-Za-z]?[ ]+(?:[A-Z]|[0-9]{1,3}(?:st|nd|rd|th)))))"
)
_US_PREFIX = re.compile(r"(?:\+1[-. ]?|(?<![0-9])1[-. ])$")
# The phone part of the two in one: where _DIGIT_LEAD's phone branch and _US_PHONE both
# match (this takes one character, the rest is looked at ahead: every start is tried).
_US_PHONE_AT = re.compile(
    r"[2-9](?<![0-9A-Za-z][2-9])"
    rf"(?=(?P<rest>[0-8][0-9](?P<paren>\)[ ]?|[-. ]){_EXCHANGE}[-. ][0-9]{{4}})"
    r"(?![0-9A-Za-z\uff10-\uff19]|[-.][0-9]))"
)


# An estate's name as people write it right before its building (我家桃源居22号楼, 万科城5幢)
# or right after the house number that ends an address (…天府大道391号星河湾).
_ESTATE_END = "居城苑园湾府庭墅村邸轩阁汇坊寓厦区岸"
_ESTATE_BEFORE = re.compile(rf"[\u4e00-\u9fff]{{2,8}}[{_ESTATE_END}]\Z")
_ESTATE_AFTER = re.compile(
    rf"[\u4e00-\u9fff]{{1,8}}[{_ESTATE_END}](?=$|[\s，。；;,.'\"”’)）\]}}])",
    re.MULTILINE,
)
_NOT_ESTATE = "我你他她的在是到住家从于与和及把被让给请"
# Not an address: a flat's layout (1室1厅), a metro line (12号线), an office of the police.
_NOT_ADDRESS_AFTER = re.compile(r"[0-9一二三四五六]厅|线")
_ORGANISATION = re.compile(r"公安局|法院|检察院|管理局|委员会|税务局")


def _refined(text: str, start: int, end: int) -> tuple[int, int] | None:
    """An address's span with the estate's name written before or after it taken in, or
    None when it is none (a flat's layout, a metro line, an office)."""
    value = text[start:end]
    if _NOT_ADDRESS_AFTER.match(text, end) or _ORGANISATION.search(value):
        return None
    if value[:1].isdigit() or value[:1] in "ＡＢＣＤＡ-Za-z":
        before = _ESTATE_BEFORE.search(text, max(0, start - 9), start)
        if before:
            run = before.group(0)
            cut = max(run.rfind(c) for c in _NOT_ESTATE)
            run = run[cut + 1 :]
            if len(run) >= 3:
                start -= len(run)
    if value.endswith("号"):
        after = _ESTATE_AFTER.match(text, end)
        if after and not any(c in _NOT_ESTATE for c in after.group(0)):
            end = after.end()
    return start, end


# ------------------------------------------------------------------ US_PHONE


def find_us_phones(text: str) -> list[Finding]:
    """US_PHONE findings only (an identifier: no tables needed)."""
    found = []
    for m in _US_PHONE_AT.finditer(text):
        f = _us_phone(text, m.start(), m.end("rest"), m["paren"])
        if f:
            found.append(f)
    return found


def _digit_led(text: str) -> Iterator[Finding]:
    """US phones and English street addresses: one scan for where either may start."""
    for lead in _DIGIT_LEAD.finditer(text):
        at = lead.start()
        if lead["phone"] is not None:
            m = _US_PHONE.match(text, at)
            if m:
                f = _us_phone(text, at, m.end(), m["paren"])
                if f:
                    yield f
                    continue
        if lead["street"] is not None and (at == 0 or text[at - 1] not in "#$.,/-"):
            m = _EN_STREET.match(text, at)
            if m:
                f = _en_address(text, m)
                if f:
                    yield f


def _us_phone(text: str, start: int, end: int, paren: str) -> Finding | None:
    """The number _US_PHONE matched at ``start`` to ``end`` (``paren``: what follows the
    area code), with its prefix, or None where it is none."""
    area, exchange = text[start : start + 3], text[end - 8 : end - 5]
    if area[1:] == "11" or exchange[1:] == "11":
        return None
    if paren[0] == ")":
        if start == 0 or text[start - 1] != "(":
            return None
        start -= 1
    elif start and text[start - 1] == "(":
        return None
    prefix = _US_PREFIX.search(text, max(0, start - 3), start)
    if prefix:
        start = prefix.start()
    # China's 400/800 service numbers are written 400-xxx-xxxx; NANP has no 400.
    if area == "400" or (area == "800" and not prefix):
        return None
    if start:
        c = text[start - 1]
        if (c.isalnum() and c.isascii()) or c in "+\uff0b" or "\uff10" <= c <= "\uff19":
            return None
        if c in "-. " and start >= 2 and text[start - 2].isdigit():
            return None  # a part of a longer number (86-755-234-5678)
    score = 0.9 if prefix or paren[0] == ")" else 0.85
    return Finding(start, end, "US_PHONE", score)


# ------------------------------------------------------------------ English addresses


def _en_address(text: str, m: re.Match[str]) -> Finding | None:
    start, pos = m.start(), m.end()
    if not _EN_STREET_AFTER_OK.match(text, pos):
        return None
    unit = _EN_UNIT.match(text, pos)
    if unit:
        pos = unit.end()
    city = _EN_CITY.match(text, pos)
    if city:
        state = _EN_STATE_ZIP.match(text, city.end())
        if state:
            pos = state.end()
        else:
            after = city.end()
            country = _EN_COUNTRY.match(text, after)
            if country:
                pos = country.end()
            elif (
                after == len(text)
                or text[after] in ".;)\n\r!?"
                or (text[after] == "," and not _EN_CITY.match(text, after))
            ):
                pos = after
        country = _EN_COUNTRY.match(text, pos)
        if country and pos > city.start():
            pos = country.end()
    else:
        state = _EN_STATE_ZIP.match(text, pos)
        if state and state.group(0).lstrip(", ")[:1].isdigit():
            pos = state.end()
    if pos == m.end() and _rare_suffix(m.group(0)):
        return None  # "10 Best Ways": a rarer suffix needs a unit, a city or a ZIP after it
    end = pos
    while end > start and text[end - 1] in " ,":
        end -= 1
    if text[end - 1] == "." and text[end - 2].islower():
        end -= 1  # the sentence's full stop, not an abbreviation's (D.C.)
    return Finding(start, end, "ADDRESS", 0.85)


_COMMON_SUFFIXES = frozenset(
    _words(
        "Street St Avenue Ave Av Road Rd Boulevard Blvd Lane Ln Drive Dr Court Ct Place Pl Square"
        " Sq Terrace Ter Way Parkway Pkwy Highway Hwy Circle Cir Trail Trl Plaza Broadway"
    )
)


def _rare_suffix(street: str) -> bool:
    words = street.rstrip(". ").split()
    last = [
        w.rstrip(".")
        for w in words
        if w.rstrip(".") not in ("N", "S", "E", "W", "NE", "NW", "SE", "SW")
    ]
    return bool(last) and last[-1] not in _COMMON_SUFFIXES


# ------------------------------------------------------------------ Chinese addresses


def _cn_addresses(text: str, t: _Tables) -> list[Finding]:
    windows: list[list[int]] = []
    for anchor in _ADDR_ANCHORS:
        for m in anchor.finditer(text):
            windows.append([m.start() - 24, m.end() + 48])
    if not windows:
        return []
    windows.sort()
    merged: list[list[int]] = [windows[0]]
    for w in windows[1:]:
        if w[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], w[1])
        else:
            merged.append(w)
    found: list[Finding] = []
    for lo, hi in merged:
        found += _addresses_in(text, max(0, lo), min(len(text), hi), t)
    return found


# A component: (start, end, word, unit). ``word`` is a suffix (路, 区, 小区), ``unit`` the
# unit after a number (号, 室, 单元); the other is None.
_Token = tuple[int, int, "str | None", "str | None"]


def _addr_tokens(text: str, lo: int, hi: int) -> list[_Token]:
    tokens: list[_Token] = []
    for m in _ADDR_WORDS.finditer(text, lo, hi):
        s, e = m.span()
        w = m.group(0)
        if w in _UNIT_SET:
            num = _NUM_BEFORE.search(text, max(lo, s - 10), s)
            if num is not None:
                ns = num.start()
                if tokens and ns < tokens[-1][1]:
                    ns = tokens[-1][1]
                if ns < s:
                    tokens.append((ns, e, None, w))
                    continue
            if w not in _KIND:
                continue
        tokens.append((s, e, w, None))
    return tokens


def _addresses_in(text: str, lo: int, hi: int, t: _Tables) -> list[Finding]:
    tokens = _addr_tokens(text, lo, hi)
    found: list[Finding] = []
    i = 0
    n = len(tokens)
    while i < n:
        j = i + 1
        while j < n:
            prev_end, tok = tokens[j - 1][1], tokens[j]
            gap = text[prev_end : tok[0]]
            if tok[3] is not None:
                # An estate's name between the house number and the building (…33号望京SOHO
                # 8号楼, …192号碧桂园5号楼): the address goes on.
                ok = gap in ("", " ", "\u3000") or (
                    text[prev_end - 1 : prev_end] == "号" and _ESTATE_GAP.fullmatch(gap) is not None
                )
            else:
                ok = not gap or _GAP_OK.fullmatch(gap) is not None
            if not ok:
                break
            j += 1
        finding = _judge_chain(text, tokens[i:j], t)
        if finding:
            found.append(finding)
        i = j
    return found


def _judge_chain(text: str, chain: list[_Token], t: _Tables) -> Finding | None:
    # The first component fixes where the address begins: a division's name (checked against
    # the table), a road's or an estate's name (the characters before, trimmed), or a number.
    while chain:
        first = chain[0]
        start, _first_end, word, unit = first
        if word is None:
            break
        if word == "道" and not _numbered(chain, 0):
            chain = chain[1:]
            continue
        run = _PLACE_RUN.search(text, max(0, start - 12), start)
        name = run.group(0) if run else ""
        kind = _KIND[word]
        if kind == "admin":
            begin = _admin_start(name + word, t)
            if begin is not None:
                start = start - len(name) + begin
                break
        else:
            name = _trim_name(name, t)
            if name:
                start -= len(name)
                break
        chain = chain[1:]  # not a division (园区, 城市) or no name: start after it
    if not chain:
        return None
    first = chain[0]
    kinds: list[str] = []
    admin_levels = 0
    unit_kinds: set[str] = set()
    if first[2] is None:
        unit_kinds.add(first[3] or "")
        kinds.append("num")
    else:
        kind = _KIND[first[2]]
        kinds.append(kind)
        if kind == "admin":
            admin_levels = _admin_levels(text[start : first[1]], t)
    end = first[1]
    prev_end = first[1]
    for k, (s, e, word, unit) in enumerate(chain[1:], 1):
        if word == "道" and not _numbered(chain, k):
            prev_end = e
            continue
        if word is None:
            kinds.append("num")
            unit_kinds.add(unit or "")
            end = e
        else:
            gap = text[prev_end:s].strip(" \u3000")
            kind = _KIND[word]
            if kind == "admin":
                whole = gap + word
                if whole in t.admin_full or (gap and _admin_start(whole, t) == 0):
                    admin_levels += 1
                    kinds.append("admin")
                    end = e
                elif gap and word in ("区", "新区") and (admin_levels or "road" in kinds):
                    kinds.append("area")  # 科技园南区, a part of a district
                    end = e
            elif gap or kinds[-1] != "num":
                kinds.append(kind)
                end = e
        prev_end = e
    lower = {"road", "town", "estate"} & set(kinds)
    nums = kinds.count("num")
    buildings = unit_kinds & {"栋", "幢", "座", "塔", "号楼"}
    rooms = unit_kinds & {"单元", "室", "房", "层", "楼"}
    label = _ADDR_LABEL.search(text, max(0, start - 8), start) is not None
    ok = (
        (admin_levels and (lower or nums))
        or ("road" in lower and unit_kinds & {"号", "号院", "号楼", "弄", "支弄"})
        or ("road" in lower and nums and label)
        or (lower & {"estate", "town"} and nums)
        or (buildings and rooms)
        or nums >= 3
        or (label and (admin_levels >= 2 or lower))
    )
    if not ok:
        return None
    if text[end - 1] in "元栋幢座楼" and unit_kinds & {
        "单元",
        "栋",
        "幢",
        "座",
        "号楼",
        "楼",
    }:
        tail = _ROOM_TAIL.match(text, end)
        if tail:
            end = tail.end()
    score = 0.9 if (admin_levels and (lower or nums)) or label else 0.8
    span = _refined(text, start, end)
    return None if span is None else Finding(span[0], span[1], "ADDRESS", score)


def _numbered(chain: list[_Token], k: int) -> bool:
    """Whether a number follows component ``k`` directly (高新南一道008号)."""
    return k + 1 < len(chain) and chain[k + 1][2] is None and chain[k + 1][0] == chain[k][1]


def _admin_start(run: str, t: _Tables) -> int | None:
    """Where in ``run`` (which ends with an administrative suffix) the divisions begin:
    the longest tail made of division names, full or short. None when the tail is none."""
    pos = len(run)
    matched = False
    while pos > 0:
        for length in range(min(pos, 12), 1, -1):
            piece = run[pos - length : pos]
            if piece in t.admin_full or (matched and piece in t.admin_short):
                pos -= length
                matched = True
                break
        else:
            break
    return pos if matched else None


def _admin_levels(run: str, t: _Tables) -> int:
    """How many division names ``run`` is made of (广东深圳南山区: 3)."""
    count, pos = 0, len(run)
    while pos > 0:
        for length in range(min(pos, 12), 1, -1):
            piece = run[pos - length : pos]
            if piece in t.admin_full or piece in t.admin_short:
                pos -= length
                count += 1
                break
        else:
            break
    return max(count, 1)


def _trim_name(name: str, t: _Tables) -> str:
    """A road's or an estate's name from the run of characters before its suffix: at most 6,
    less words that start a sentence (欢迎光临, 公司) and words like 来, 去."""
    name = name[-6:]
    while len(name) > 2 and (name[:2] in t.common and name[:2] not in t.admin_short):
        name = name[2:]
    while len(name) > 2 and name[0] in _WEAK_START:
        name = name[1:]
    return name
