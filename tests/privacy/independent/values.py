"""Value generators: each returns (written value, TYPE), ready to drop into a template.

Names, e-mails, IPs, SSNs and US street addresses come from Faker (zh_CN / en_US);
numbers with check digits are built here from the public standards (validators.py).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random

from faker import Faker

from . import validators as v

Part = str | tuple[str, str]

FULL_DIGITS = {str(i): chr(0xFF10 + i) for i in range(10)} | {"X": "Ｘ", "x": "ｘ"}
ZW_CHARS = ("\u200b", "\u200c", "\u200d", "\ufeff")

ID_REGIONS = [
    "110101",
    "110105",
    "110108",
    "110114",
    "120101",
    "120104",
    "130102",
    "130104",
    "140105",
    "150102",
    "210102",
    "210203",
    "220102",
    "230102",
    "310101",
    "310104",
    "310115",
    "310112",
    "320102",
    "320506",
    "330106",
    "330108",
    "330206",
    "340104",
    "350102",
    "350203",
    "360102",
    "370102",
    "370202",
    "410105",
    "420111",
    "420106",
    "430104",
    "440106",
    "440305",
    "440304",
    "450103",
    "460106",
    "500103",
    "510107",
    "510104",
    "520102",
    "530102",
    "540102",
    "610113",
    "620102",
    "630102",
    "640104",
    "650102",
    "441900",
    "445102",
    "371402",
]

MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "145",
    "147",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "175",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "193",
    "195",
    "198",
    "199",
]

# (area code without the leading 0, local length)
AREA_CODES = (
    ("10", 8),
    ("21", 8),
    ("20", 8),
    ("22", 8),
    ("23", 8),
    ("24", 8),
    ("25", 8),
    ("27", 8),
    ("28", 8),
    ("29", 8),
    ("755", 8),
    ("571", 8),
    ("512", 8),
    ("532", 8),
    ("531", 8),
    ("731", 8),
    ("591", 8),
    ("592", 7),
    ("371", 8),
    ("851", 8),
    ("871", 8),
    ("931", 7),
    ("451", 8),
    ("431", 8),
    ("311", 8),
    ("351", 7),
    ("898", 8),
    ("769", 8),
    ("757", 8),
    ("335", 7),
    ("391", 7),
    ("734", 7),
    ("574", 8),
    ("760", 8),
)

CARD_BINS = (
    ("622202", 19),
    ("622848", 19),
    ("621700", 19),
    ("622700", 19),
    ("621483", 16),
    ("622588", 16),
    ("621661", 19),
    ("622262", 19),
    ("622155", 16),
    ("625807", 16),
    ("621226", 19),
    ("623668", 19),
    ("622609", 16),
    ("628288", 16),
    ("621799", 19),
)

PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
PLATE_CITY = {
    "京": "ABCEFGHJKLMNPQ",
    "沪": "ABCDEFGHJKLMN",
    "粤": "ABCDEFGHJKLMNPQRSTUVWXY",
    "浙": "ABCDEFGHJKL",
    "苏": "ABCDEFGHJKLMN",
    "鲁": "ABCDEFGHJKLMNPQRSUVY",
    "川": "ABCDEFHJKLMQRSTUVWXYZ",
    "鄂": "ABCDEFGHJKLMNPQRS",
    "豫": "ABCDEFGHJKLMNPQRSU",
    "闽": "ABCDEFGHJK",
    "湘": "ABCDEFGHJKLMNU",
    "津": "ABCDEFGHJKLMN",
    "渝": "ABCDFGH",
    "陕": "ABCDEFGHJKV",
    "皖": "ABCDEFGHJKLMNPRS",
    "冀": "ABCDEFGHJRT",
    "辽": "ABCDEFGHJKLMNP",
    "黑": "ABCDEFGHJKLMNP",
    "吉": "ABCDEFGHJ",
    "晋": "ABCDEFHJKLM",
    "赣": "ABCDEFGHJKLM",
    "桂": "ABCDEFGHJKLMNPR",
    "云": "ACDEFGHJKLMNPQRS",
    "贵": "ABCDEFGHJ",
    "甘": "ABCDEFGHJKLMNP",
    "蒙": "ABCDEFGHJKLM",
    "新": "ABCDEFGHJKLMNPQR",
    "宁": "ABCDE",
    "琼": "ABCDEF",
    "青": "ABCDEFGH",
    "藏": "ABCDEFGHJ",
}

# Province/municipality -> city -> (districts, roads, compounds)
ZH_PLACES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "上海市": {
        "": (
            ("浦东新区", "徐汇区", "静安区", "黄浦区", "闵行区", "杨浦区", "长宁区"),
            (
                "张江路",
                "世纪大道",
                "南京西路",
                "淮海中路",
                "漕溪北路",
                "长寿路",
                "碧波路",
                "虹桥路",
            ),
        )
    },
    "北京市": {
        "": (
            ("海淀区", "朝阳区", "东城区", "西城区", "丰台区", "昌平区"),
            ("中关村大街", "建国路", "学院路", "西直门外大街", "望京街", "上地十街", "知春路"),
        )
    },
    "天津市": {
        "": (("和平区", "南开区", "河西区", "滨海新区"), ("南京路", "卫津路", "友谊路", "黄海路"))
    },
    "重庆市": {
        "": (
            ("渝中区", "江北区", "渝北区", "九龙坡区"),
            ("解放碑步行街", "建新北路", "金开大道", "杨家坪正街"),
        )
    },
    "广东省": {
        "深圳市": (
            ("南山区", "福田区", "宝安区", "龙岗区"),
            ("深南大道", "科技园路", "滨海大道", "华强北路", "科苑路"),
        ),
        "广州市": (
            ("天河区", "越秀区", "海珠区", "番禺区"),
            ("天河路", "中山五路", "珠江东路", "体育西路", "新港西路"),
        ),
        "东莞市": (("南城街道", "东城街道"), ("鸿福路", "东莞大道")),
    },
    "浙江省": {
        "杭州市": (
            ("西湖区", "余杭区", "滨江区", "拱墅区"),
            ("文三路", "文一西路", "江南大道", "莫干山路", "网商路"),
        ),
        "宁波市": (("鄞州区", "海曙区"), ("天童南路", "中山西路")),
    },
    "江苏省": {
        "南京市": (("鼓楼区", "玄武区", "建邺区"), ("中山路", "北京西路", "江东中路", "珠江路")),
        "苏州市": (("姑苏区", "工业园区", "吴中区"), ("干将路", "星湖街", "东吴北路")),
    },
    "四川省": {
        "成都市": (
            ("武侯区", "锦江区", "高新区", "青羊区"),
            ("天府大道", "人民南路", "春熙路", "蜀都大道"),
        )
    },
    "湖北省": {
        "武汉市": (("洪山区", "武昌区", "江汉区"), ("珞喻路", "中南路", "解放大道", "光谷大道"))
    },
    "山东省": {
        "济南市": (("历下区", "市中区"), ("经十路", "泉城路", "解放路")),
        "青岛市": (("市南区", "崂山区"), ("香港中路", "东海西路", "海尔路")),
    },
    "陕西省": {
        "西安市": (("雁塔区", "碑林区", "未央区"), ("长安南路", "科技路", "东大街", "凤城八路"))
    },
    "河南省": {"郑州市": (("金水区", "二七区", "中原区"), ("花园路", "农业路", "建设西路"))},
    "福建省": {"厦门市": (("思明区", "湖里区"), ("鹭江道", "湖滨南路", "嘉禾路"))},
}
COMPOUNDS = (
    "阳光花园",
    "翠苑小区",
    "金色家园",
    "华星时代广场",
    "万科城",
    "碧桂园",
    "世纪公寓",
    "滨江花园",
    "绿地中心",
    "保利花园",
    "金地格林小镇",
    "中海国际社区",
    "望京SOHO",
    "融科资讯中心",
)
VILLAGES = (
    ("河南省周口市郸城县", "汲冢镇", "王营村"),
    ("山东省菏泽市曹县", "大集镇", "丁楼村"),
    ("湖南省邵阳市隆回县", "桃洪镇", "五里村"),
    ("四川省南充市仪陇县", "金城镇", "柳垭村"),
    ("安徽省阜阳市临泉县", "城关镇", "张营村"),
    ("江西省赣州市于都县", "贡江镇", "长征村"),
)

EN_STREETS = (
    "1600 Pennsylvania Ave NW, Washington, DC 20500",
    "350 Fifth Ave, New York, NY 10118",
    "1 Infinite Loop, Cupertino, CA 95014",
    "233 S Wacker Dr, Chicago, IL 60606",
    "400 Broad St, Seattle, WA 98109",
    "4059 Mt Lee Dr, Hollywood, CA 90068",
)

EN_COMPANIES = (
    "Acme Corp",
    "Northwind Traders",
    "Contoso Ltd.",
    "Globex Corporation",
    "Initech",
    "Umbrella Logistics",
    "Stark Industries",
    "Wayne Enterprises",
)

IBAN_BANKS = {
    "GB": ("NWBK", "BARC", "HBUK", "LOYD", "MIDL"),
    "NL": ("ABNA", "INGB", "RABO", "TRIO"),
}


class Gen:
    """One seeded source of values for one generate() call."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fz = Faker("zh_CN")
        self.fz.seed_instance(seed)
        self.fe = Faker("en_US")
        self.fe.seed_instance(seed + 7919)

    # --- helpers ------------------------------------------------------------------------
    def pick(self, seq):
        return self.rng.choice(seq)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def digits(self, n: int, first: str = "0123456789") -> str:
        return self.rng.choice(first) + "".join(self.rng.choice("0123456789") for _ in range(n - 1))

    def zw(self, s: str) -> str:
        """A zero-width character inside (never at either end of) the value."""
        i = self.rng.randrange(1, len(s))
        return s[:i] + self.pick(ZW_CHARS) + s[i:]

    def full(self, s: str, all_digits: bool = True) -> str:
        if all_digits:
            return "".join(FULL_DIGITS.get(c, c) for c in s)
        i = self.rng.randrange(0, len(s) - 3)
        return s[:i] + "".join(FULL_DIGITS.get(c, c) for c in s[i : i + 4]) + s[i + 4 :]

    def noisy(self, s: str, p: float = 0.12) -> str:
        """Occasionally full-width digits or a zero-width character inside the value."""
        r = self.rng.random()
        if r < p / 2:
            return self.full(s, all_digits=self.chance(0.5))
        if r < p:
            return self.zw(s)
        return s

    def date(self, start: int = 2023, end: int = 2025) -> dt.date:
        base = dt.date(start, 1, 1)
        return base + dt.timedelta(days=self.rng.randrange((dt.date(end, 12, 31) - base).days))

    def ts(self) -> str:
        d = self.date()
        n = self.rng.randrange
        return f"{d.isoformat()} {n(24):02d}:{n(60):02d}:{n(60):02d}"

    def amount(self) -> str:
        return f"{self.rng.randrange(1, 99999):,}.{self.rng.randrange(100):02d}"

    def order_no(self, n: int = 12) -> str:
        """A plain order/ticket number that validates as nothing (even a 16-19 digit one)."""
        while True:
            s = self.digits(n, "23456789")
            if not v.luhn_ok(s) and not (n == 18 and v.uscc_checksum_ok(s)):
                return s

    # --- CN_RESIDENT_ID -----------------------------------------------------------------
    def id_raw(self, born: dt.date | None = None) -> str:
        born = born or dt.date(1950, 1, 1) + dt.timedelta(days=self.rng.randrange(365 * 58))
        body = self.pick(ID_REGIONS) + born.strftime("%Y%m%d") + self.digits(3)
        return body + v.id_check_char(body)

    def cn_id(self, style: str | None = None, born: dt.date | None = None) -> tuple[str, str]:
        s = self.id_raw(born)
        style = style or self.pick(
            ["plain"] * 6 + ["684", "684dash", "stray", "full", "zw", "lowx"]
        )
        if style == "684":
            s = f"{s[:6]} {s[6:14]} {s[14:]}"
        elif style == "684dash":
            s = f"{s[:6]}-{s[6:14]}-{s[14:]}"
        elif style == "stray":
            i = self.rng.randrange(3, 16)
            s = s[:i] + " " + s[i:]
        elif style == "full":
            s = self.full(s)
        elif style == "zw":
            s = self.zw(s)
        elif style == "lowx" and s.endswith("X"):
            s = s[:-1] + "x"
        return s, "CN_RESIDENT_ID"

    # --- CN_PHONE -----------------------------------------------------------------------
    def mobile_raw(self) -> str:
        if self.chance(0.5):
            return self.fz.phone_number()
        return self.pick(MOBILE_PREFIXES) + self.digits(8)

    def mobile(self, style: str | None = None, raw: str | None = None) -> tuple[str, str]:
        s = raw or self.mobile_raw()
        style = style or self.pick(
            ["plain"] * 6
            + ["sp", "dash", "dot", "+86", "+86sp", "+86dash", "86", "+86glued", "noisy"]
        )
        a, b, c = s[:3], s[3:7], s[7:]
        s = {
            "plain": s,
            "sp": f"{a} {b} {c}",
            "dash": f"{a}-{b}-{c}",
            "dot": f"{a}.{b}.{c}",
            "+86": f"+86 {s}",
            "+86sp": f"+86 {a} {b} {c}",
            "+86dash": f"+86-{a}-{b}-{c}",
            "86": f"86{s}",
            "+86glued": f"+86{s}",
            "noisy": s,
        }[style]
        if style == "noisy":
            s = self.full(s) if self.chance(0.5) else self.zw(s)
        return s, "CN_PHONE"

    def mobile_unallocated(self) -> tuple[str, str]:
        return self.pick(["100", "101", "102", "104", "120", "122", "127"]) + self.digits(
            8
        ), "CN_PHONE"

    # --- CN_LANDLINE --------------------------------------------------------------------
    def landline(self, style: str | None = None) -> tuple[str, str]:
        area, n = self.pick(AREA_CODES)
        local = self.digits(n, "2345678")
        style = style or self.pick(
            ["dash"] * 4 + ["space", "run", "paren", "parensp", "dash44", "intl"]
        )
        half = n // 2
        s = {
            "dash": f"0{area}-{local}",
            "space": f"0{area} {local[:half]} {local[half:]}",
            "run": f"0{area}{local}",
            "paren": f"(0{area}){local}",
            "parensp": f"(0{area}) {local[:half]} {local[half:]}",
            "dash44": f"0{area}-{local[:half]}-{local[half:]}",
            "intl": f"+86-{area}-{local[:half]}-{local[half:]}",
        }[style]
        return s, "CN_LANDLINE"

    # --- BANK_CARD ----------------------------------------------------------------------
    def card_raw(self, kind: str = "cn") -> str:
        if kind == "cn":
            bin_, n = self.pick(CARD_BINS)
            return v.luhn_complete(bin_ + self.digits(n - 7))
        return self.fe.credit_card_number(self.pick(["visa16", "mastercard"]))

    def card(self, kind: str = "cn", style: str | None = None) -> tuple[str, str]:
        s = self.card_raw(kind)
        style = style or self.pick(["plain"] * 4 + ["sp4", "sp4", "dash4", "noisy"])
        if style in ("sp4", "dash4"):
            sep = " " if style == "sp4" else "-"
            s = sep.join(s[i : i + 4] for i in range(0, len(s), 4))
        elif style == "noisy":
            s = self.noisy(s, 1.0)
        return s, "BANK_CARD"

    # --- EMAIL --------------------------------------------------------------------------
    def email(self, locale: str = "zh") -> tuple[str, str]:
        if locale == "en":
            return self.pick([self.fe.email, self.fe.free_email, self.fe.company_email])(), "EMAIL"
        r = self.rng.random()
        if r < 0.3:
            return self.fz.free_email(), "EMAIL"
        if r < 0.45:
            return self.fz.email(), "EMAIL"
        user = self.fz.user_name()
        if self.chance(0.3):
            user = self.digits(self.rng.randrange(6, 11), "123456789")
        dom = self.pick(
            [
                "163.com",
                "qq.com",
                "126.com",
                "sina.com",
                "foxmail.com",
                "139.com",
                "aliyun.com",
                "outlook.com",
                "gmail.com",
                "corp-mail.cn",
                "zju.edu.cn",
            ]
        )
        return f"{user}@{dom}", "EMAIL"

    # --- IP_ADDRESS ---------------------------------------------------------------------
    def ipv4(self) -> tuple[str, str]:
        return (self.fe.ipv4_public() if self.chance(0.7) else self.fe.ipv4_private()), "IP_ADDRESS"

    def ipv6(self, style: str | None = None) -> tuple[str, str]:
        style = style or self.pick(
            ["full", "compressed", "compressed", "trailing", "linklocal", "upper", "mapped", "doc"]
        )
        if style == "full":
            return self.fe.ipv6(), "IP_ADDRESS"
        groups = [f"{self.rng.randrange(65536):x}" for _ in range(8)]
        if style == "compressed":
            groups[self.rng.randrange(3, 7)] = "0"
            groups[5] = "0"
            return str(ipaddress.IPv6Address(":".join(groups))), "IP_ADDRESS"
        if style == "trailing":
            head = self.pick(["2408:8207", "240e:3b4", "2409:8a1e", "2001:da8", "2400:cb00"])
            return head + ":" + ":".join(groups[:2]) + "::", "IP_ADDRESS"
        if style == "linklocal":
            return "fe80::" + ":".join(groups[:4]), "IP_ADDRESS"
        if style == "upper":
            return str(ipaddress.IPv6Address(":".join(groups))).upper(), "IP_ADDRESS"
        if style == "mapped":
            return "::ffff:" + self.fe.ipv4_private(), "IP_ADDRESS"
        return "2001:db8:" + groups[0] + "::" + groups[1], "IP_ADDRESS"

    def ip(self) -> tuple[str, str]:
        return self.ipv4() if self.chance(0.6) else self.ipv6()

    # --- CN_PASSPORT --------------------------------------------------------------------
    def passport(self) -> tuple[str, str]:
        r = self.rng.random()
        if r < 0.5:
            return "E" + self.digits(8), "CN_PASSPORT"
        if r < 0.8:
            return "E" + self.pick("ABCDEFGHJK") + self.digits(7), "CN_PASSPORT"
        return "G" + self.digits(8), "CN_PASSPORT"

    # --- CN_USCC ------------------------------------------------------------------------
    def uscc_raw(self) -> str:
        dept = self.pick("99995Y1")
        kind = self.pick(v.USCC_KINDS[dept])
        region = self.pick(ID_REGIONS)
        chars = "0123456789" * 3 + "ABCDEFGHJKLMNPQRTUWXY"
        org8 = ("MA" if self.chance(0.4) else self.pick("0123456789")) + "".join(
            self.pick(chars) for _ in range(8)
        )
        org8 = org8[:8]
        body = dept + kind + region + org8 + v.org_check_char(org8)
        return body + v.uscc_check_char(body)

    def uscc(self) -> tuple[str, str]:
        return self.uscc_raw(), "CN_USCC"

    # --- CN_LICENSE_PLATE ---------------------------------------------------------------
    def plate(self, style: str | None = None) -> tuple[str, str]:
        prov = self.pick(list(PLATE_CITY))
        city = self.pick(PLATE_CITY[prov])
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        kind = self.pick(["ord", "ord", "ord", "nev_small", "nev_large"])
        if kind == "ord":
            tail = [self.pick("0123456789") for _ in range(5)]
            for _ in range(self.pick([0, 0, 1, 1, 2])):
                tail[self.rng.randrange(5)] = self.pick(letters)
            tail_s = "".join(tail)
        elif kind == "nev_small":
            tail_s = self.pick("DF") + self.pick(letters + "0123456789") + self.digits(4)
        else:
            tail_s = self.digits(5) + self.pick("DF")
        style = style or self.pick(["plain"] * 4 + ["dash", "dot", "space"])
        sep = {"plain": "", "dash": "-", "dot": "·", "space": " "}[style]
        return prov + city + sep + tail_s, "CN_LICENSE_PLATE"

    # --- US_SSN -------------------------------------------------------------------------
    def ssn(self, style: str | None = None) -> tuple[str, str]:
        s = self.fe.ssn()
        style = style or self.pick(["dash"] * 4 + ["space", "plain"])
        d = s.replace("-", "")
        if style == "space":
            s = f"{d[:3]} {d[3:5]} {d[5:]}"
        elif style == "plain":
            s = d
        return s, "US_SSN"

    # --- IBAN ---------------------------------------------------------------------------
    def iban_raw(self) -> str:
        cc = self.pick(["DE", "GB", "FR", "NL", "ES", "IT", "CH", "BE"])
        alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        bban = {
            "DE": lambda: self.digits(18),
            "GB": lambda: self.pick(IBAN_BANKS["GB"]) + self.digits(14),
            "FR": lambda: (
                self.digits(10) + "".join(self.pick(alnum) for _ in range(11)) + self.digits(2)
            ),
            "NL": lambda: self.pick(IBAN_BANKS["NL"]) + self.digits(10),
            "ES": lambda: self.digits(20),
            "IT": lambda: (
                self.pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                + self.digits(10)
                + "".join(self.pick(alnum) for _ in range(12))
            ),
            "CH": lambda: self.digits(5) + "".join(self.pick(alnum) for _ in range(12)),
            "BE": lambda: self.digits(12),
        }[cc]()
        check = 98 - v.iban_mod97(bban + cc + "00")
        return f"{cc}{check:02d}{bban}"

    def iban(self, style: str | None = None) -> tuple[str, str]:
        s = self.iban_raw()
        style = style or self.pick(["grouped", "grouped", "compact"])
        if style == "grouped":
            s = " ".join(s[i : i + 4] for i in range(0, len(s), 4))
        return s, "IBAN"

    # --- PERSON -------------------------------------------------------------------------
    def person_zh(self) -> tuple[str, str]:
        if self.chance(0.12):
            given = self.fz.first_name()
            return self.pick(v.COMPOUND_SURNAMES) + given, "PERSON"
        return self.fz.name(), "PERSON"

    def person_pinyin(self, style: str | None = None) -> tuple[str, str]:
        last = self.fz.last_romanized_name()
        if self.chance(0.08):
            last = self.pick(["Ouyang", "Sima", "Zhuge", "Shangguan", "Murong"])
        first = self.fz.first_romanized_name()
        style = style or self.pick(["sf", "sf", "fs", "caps", "upper"])
        s = {
            "sf": f"{last} {first}",
            "fs": f"{first} {last}",
            "caps": f"{last.upper()} {first}",
            "upper": f"{last.upper()} {first.upper()}",
        }[style]
        return s, "PERSON"

    def title_en(self) -> str:
        """A title before an English name: outside the PERSON span."""
        return self.pick(["", "", "", "Mr. ", "Ms. ", "Mrs. ", "Dr. "])

    def person_en(self) -> tuple[str, str]:
        first, last = self.fe.first_name(), self.fe.last_name()
        if self.chance(0.2):
            return f"{first} {self.pick(PLATE_LETTERS)}. {last}", "PERSON"
        return f"{first} {last}", "PERSON"

    # --- ADDRESS ------------------------------------------------------------------------
    def unit(self) -> str:
        n = self.rng.randrange
        r = self.rng.random()
        if r < 0.4:
            return f"{n(1, 30)}幢{n(1, 6)}单元{n(1, 33)}{n(1, 5):02d}室"
        if r < 0.7:
            return f"{n(1, 20)}栋{n(1, 33)}{n(1, 9):02d}室"
        if r < 0.85:
            return f"{self.pick('ABCD')}座{n(1, 40)}{n(1, 20):02d}室"
        return f"{n(1, 12)}号楼{n(1, 4)}单元{n(1, 20)}0{n(1, 5)}"

    def address_zh(self, style: str | None = None) -> tuple[str, str]:
        style = style or self.pick(
            ["full", "full", "full", "city", "road", "unit", "village", "faker"]
        )
        if style == "unit":
            return self.unit(), "ADDRESS"
        if style == "village":
            county, town, village = self.pick(VILLAGES)
            return (
                f"{county}{town}{village}{self.rng.randrange(1, 12)}组"
                f"{self.rng.randrange(1, 80)}号",
                "ADDRESS",
            )
        if style == "faker":
            return (
                f"{self.fz.city_name()}市{self.fz.district()}区{self.fz.street_name()}"
                f"{self.rng.randrange(1, 999)}号"
            ), "ADDRESS"
        prov = self.pick(list(ZH_PLACES))
        city = self.pick(list(ZH_PLACES[prov]))
        districts, roads = ZH_PLACES[prov][city]
        district, road = self.pick(districts), self.pick(roads)
        num = f"{self.rng.randrange(1, 1200)}号"
        tail = ""
        if self.chance(0.6):
            tail = self.pick(COMPOUNDS) + self.unit() if self.chance(0.6) else self.unit()
        if style == "full":
            return prov + city + district + road + num + tail, "ADDRESS"
        if style == "city":
            return (city or prov) + district + road + num + tail, "ADDRESS"
        return district + road + num + tail, "ADDRESS"

    def address_en(self) -> tuple[str, str]:
        if self.chance(0.12):
            return self.pick(EN_STREETS), "ADDRESS"
        street = self.fe.street_address()
        sep = self.pick([", ", ", ", " "])
        return (
            f"{street}, {self.fe.city()}{sep}{self.fe.state_abbr()} {self.fe.zipcode()}",
            "ADDRESS",
        )

    # --- US_PHONE -----------------------------------------------------------------------
    def us_phone(self, style: str | None = None) -> tuple[str, str]:
        while True:
            area = self.digits(3, "23456789")
            exch = self.digits(3, "23456789")
            if area[1:] != "11" and exch[1:] != "11" and area[1] != "9":
                break
        line = self.digits(4)
        style = style or self.pick(["paren", "paren", "dash", "dot", "+1dash", "+1paren", "1dash"])
        s = {
            "paren": f"({area}) {exch}-{line}",
            "dash": f"{area}-{exch}-{line}",
            "dot": f"{area}.{exch}.{line}",
            "+1dash": f"+1-{area}-{exch}-{line}",
            "+1paren": f"+1 ({area}) {exch}-{line}",
            "1dash": f"1-{area}-{exch}-{line}",
        }[style]
        return s, "US_PHONE"

    # --- non-personal filler -------------------------------------------------------------
    def company_zh(self) -> str:
        return self.fz.company()

    def company_en(self) -> str:
        return self.pick(EN_COMPANIES)
