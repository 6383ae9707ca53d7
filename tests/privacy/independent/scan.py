"""A small reference scanner over validators.py, for checking the corpus itself.

`label_like(text)` finds values of the pattern types (not PERSON / ADDRESS) that the
validators accept, in the written formats the corpus uses. A value right after a
non-personal keyword of its own (订单号, orderNo, SKU, ISBN, 快递单号, version,
Chrome/, 第 ... 条, ...) is exempt, as is a digit run that is only a slice of a longer
dash- or space-separated number (the whole run is judged, never a slice of it).
The self-test asserts it finds nothing in the hard negatives, nor anything outside
the labels of a generated sample.
"""

from __future__ import annotations

import ipaddress
import re

from . import validators as v

NEG_KEYWORDS = (
    r"订单号|订单编号|orderNo|order_no|order id|order no\.?|SKU|sku|条码|条形码|商品编码|"
    r"ISBN(?:-13)?|"
    r"快递单号|运单号|waybill(?: no\.?)?|tracking(?: no\.?| number)?|流水号|交易流水号|发票号码|"
    r"版本号?|固件版本|软件版本|version|app_version|ver|build|Build|Chrome/|Safari/|Firefox/|Edg/|"
    r"[vV]|第|section|Section|§"
)
_EXEMPT_BEFORE = re.compile(rf"(?i:{NEG_KEYWORDS})[\"']?\s*[:：=#]?\s*[\"']?\s*$")
_EXEMPT_AFTER = re.compile(r"^\s*(?:条|节|款|章)")

_RUN = re.compile(
    r"(?<![\d.])(?:\+\d{1,3}[ \-.]?\(|\+|\()?\d+(?:(?:[ \-.]|\) ?)\d+)*(?:[Xx](?![A-Za-z]))?"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?![\w:])")
_ALNUM = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]+(?![A-Za-z0-9])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4})+")
_PLATE = re.compile(rf"[{v.PLATE_PROVINCES}][A-Z][\-·• ]?[A-Z0-9]{{5,6}}(?![A-Za-z0-9])")

_MOBILE_FMT = re.compile(r"(?:(?:\+|00)?86[ \-]?)?1\d{2}([ \-.]?)\d{4}\1\d{4}")
_LANDLINE_FMT = re.compile(r"(?:\+86-?)?\(?0?\d{2,3}\)?[ \-]?\d{3,4}[ \-]?\d{4}")
_US_FMT = re.compile(r"(?:\+?1[ \-.]?)?(?:\(\d{3}\) ?|\d{3}[ \-.])\d{3}[\-.]\d{4}")
_SSN_FMT = re.compile(r"\d{3}([\- ])\d{2}\1\d{4}")
_CARD_FMT = re.compile(
    r"\d{16,19}|\d{4}([ \-])\d{4}(?:\1\d{4}){2}(?:\1\d{1,3}|\1\d{4}(?:\1\d{1,3})?)?|\d{6} \d{10,13}"
)
_ID_FMT = re.compile(r"\d{6}([ \-])\d{8}\1\d{3}[\dXx]|[\dXx ]{18,19}")


def _normalised(text: str) -> tuple[str, list[int]]:
    out, where = [], []
    for i, ch in enumerate(text):
        if ch in v.ZERO_WIDTH:
            continue
        out.append(v.to_ascii(ch))
        where.append(i)
    return "".join(out), where


def _run_types(run: str, before: str) -> list[str]:
    found = []
    d = re.sub(r"[^\dXx]", "", run)
    if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", run) and v.is_ip(run):
        found.append("IP_ADDRESS")
    if len(d) == 18 and _ID_FMT.fullmatch(run) and run.count(" ") <= 2 and v.is_resident_id(d):
        found.append("CN_RESIDENT_ID")
    if len(d) == 18 and d.isdigit() and run == d and v.uscc_checksum_ok(d):
        found.append("CN_USCC")
    if _CARD_FMT.fullmatch(run) and v.is_bank_card(run):
        found.append("BANK_CARD")
    if _MOBILE_FMT.fullmatch(run) and v.is_cn_mobile(run):
        found.append("CN_PHONE")
    if _LANDLINE_FMT.fullmatch(run) and v.is_cn_landline(run):
        found.append("CN_LANDLINE")
    if _US_FMT.fullmatch(run) and v.is_us_phone(run):
        found.append("US_PHONE")
    if (
        _SSN_FMT.fullmatch(run) or (re.fullmatch(r"\d{9}", run) and re.search(r"SSN\W*$", before))
    ) and v.is_ssn(run):
        found.append("US_SSN")
    return found


def label_like(text: str, exempt: bool = True) -> list[tuple[int, int, str]]:
    """(start, end, TYPE) of validator-accepted values, in positions of `text`."""
    t, where = _normalised(text)
    hits: set[tuple[int, int, str]] = set()

    def add(s: int, e: int, type_: str) -> None:
        if exempt and (
            _EXEMPT_BEFORE.search(t[max(0, s - 24) : s]) or _EXEMPT_AFTER.match(t[e : e + 3])
        ):
            return
        hits.add((where[s], where[e - 1] + 1, type_))

    for m in _RUN.finditer(t):
        run = m.group()
        if run.startswith("(") and ")" not in run:
            run, start = run[1:], m.start() + 1
        else:
            start = m.start()
        for type_ in _run_types(run, t[max(0, start - 8) : start]):
            add(start, start + len(run), type_)
    for m in _EMAIL.finditer(t):
        if v.is_email(m.group()):
            add(m.start(), m.end(), "EMAIL")
    for m in _IPV6.finditer(t):
        cand = m.group().rstrip(".")
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        add(m.start(), m.start() + len(cand), "IP_ADDRESS")
    for m in _ALNUM.finditer(t):
        tok = m.group()
        if v.is_cn_passport(tok):
            add(m.start(), m.end(), "CN_PASSPORT")
        if len(tok) == 18 and not tok.isdigit() and v.is_uscc(tok):
            add(m.start(), m.end(), "CN_USCC")
    for m in _IBAN.finditer(t):
        cand = m.group()
        while cand:
            if v.is_iban(cand):
                add(m.start(), m.start() + len(cand), "IBAN")
                break
            cut = cand.rfind(" ")
            cand = cand[:cut] if cut > 0 else ""
    for m in _PLATE.finditer(t):
        for end in (m.end(), m.end() - 1):
            if v.is_plate(t[m.start() : end]):
                add(m.start(), end, "CN_LICENSE_PLATE")
                break
    return sorted(hits)
