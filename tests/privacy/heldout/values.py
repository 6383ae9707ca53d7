"""Value makers for the held-out corpus.

Names and addresses come from Faker (zh_CN, en_US) and from this module's own tables and
combinations; the identifiers are built here with their own check digits (GB 11643 for the
resident identity number, Luhn for bank cards). Labelling conventions:

* PERSON: the name alone; titles (先生, 女士, 经理, Dr., Mr.) stay outside the span.
* ADDRESS: from the first place level written down to the room, as one span; a Chinese
  postcode stays outside, a US ZIP code is part of the one-line US address.
* CN_PHONE / US_PHONE: the number as written, with its separators and a +86 / +1 prefix.
* BANK_CARD: the full card number as written (spaces or dashes included); masked numbers
  and "尾号1234" are not labelled.
* EMAIL: the address alone, without angle brackets or "mailto:".
"""

from __future__ import annotations

import random
from typing import NamedTuple

from faker import Faker

PERSON = "PERSON"
ADDRESS = "ADDRESS"
CN_PHONE = "CN_PHONE"
CN_RESIDENT_ID = "CN_RESIDENT_ID"
EMAIL = "EMAIL"
US_PHONE = "US_PHONE"
BANK_CARD = "BANK_CARD"
TYPES = (PERSON, ADDRESS, CN_PHONE, CN_RESIDENT_ID, EMAIL, US_PHONE, BANK_CARD)
IDENTIFIER_TYPES = (CN_PHONE, CN_RESIDENT_ID, EMAIL, US_PHONE, BANK_CARD)


class Lab(NamedTuple):
    """A value that is personal data: its text and its type."""

    text: str
    type: str


# --- check digits -------------------------------------------------------------------------

_GB11643_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2


def gb11643_check_char(body17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID."""
    total = sum(int(c) * w for c, w in zip(body17, _GB11643_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def luhn_check_digit(body: str) -> str:
    """The digit that makes body + digit pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended on the right
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


# --- tables -------------------------------------------------------------------------------

SURNAMES = [
    ("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"),
    ("杨", "Yang"), ("黄", "Huang"), ("赵", "Zhao"), ("吴", "Wu"), ("周", "Zhou"),
    ("徐", "Xu"), ("孙", "Sun"), ("马", "Ma"), ("朱", "Zhu"), ("胡", "Hu"),
    ("郭", "Guo"), ("何", "He"), ("高", "Gao"), ("林", "Lin"), ("罗", "Luo"),
    ("郑", "Zheng"), ("梁", "Liang"), ("谢", "Xie"), ("宋", "Song"), ("唐", "Tang"),
    ("许", "Xu"), ("韩", "Han"), ("冯", "Feng"), ("邓", "Deng"), ("曹", "Cao"),
    ("彭", "Peng"), ("曾", "Zeng"), ("肖", "Xiao"), ("田", "Tian"), ("董", "Dong"),
    ("袁", "Yuan"), ("潘", "Pan"), ("于", "Yu"), ("蒋", "Jiang"), ("蔡", "Cai"),
    ("余", "Yu"), ("杜", "Du"), ("叶", "Ye"), ("程", "Cheng"), ("苏", "Su"),
    ("魏", "Wei"), ("吕", "Lyu"), ("丁", "Ding"), ("任", "Ren"), ("沈", "Shen"),
    ("姚", "Yao"), ("卢", "Lu"), ("姜", "Jiang"), ("崔", "Cui"), ("钟", "Zhong"),
    ("谭", "Tan"), ("陆", "Lu"), ("汪", "Wang"), ("范", "Fan"), ("金", "Jin"),
    ("石", "Shi"), ("廖", "Liao"), ("贾", "Jia"), ("夏", "Xia"), ("韦", "Wei"),
    ("方", "Fang"), ("白", "Bai"), ("邹", "Zou"), ("孟", "Meng"), ("熊", "Xiong"),
    ("秦", "Qin"), ("邱", "Qiu"), ("江", "Jiang"), ("尹", "Yin"), ("薛", "Xue"),
    ("闫", "Yan"), ("段", "Duan"), ("雷", "Lei"), ("侯", "Hou"), ("龙", "Long"),
    ("史", "Shi"), ("黎", "Li"), ("贺", "He"), ("顾", "Gu"), ("毛", "Mao"),
    ("郝", "Hao"), ("龚", "Gong"), ("邵", "Shao"), ("万", "Wan"), ("钱", "Qian"),
    ("严", "Yan"), ("覃", "Qin"), ("武", "Wu"), ("戴", "Dai"), ("莫", "Mo"),
    ("孔", "Kong"), ("向", "Xiang"), ("常", "Chang"),
]  # fmt: skip

COMPOUND_SURNAMES = [
    ("欧阳", "Ouyang"), ("司马", "Sima"), ("上官", "Shangguan"), ("诸葛", "Zhuge"),
    ("慕容", "Murong"), ("东方", "Dongfang"), ("皇甫", "Huangfu"), ("令狐", "Linghu"),
    ("夏侯", "Xiahou"), ("尉迟", "Yuchi"), ("公孙", "Gongsun"), ("司徒", "Situ"),
    ("端木", "Duanmu"), ("长孙", "Zhangsun"),
]  # fmt: skip

GIVEN_CHARS = [
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"),
    ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"),
    ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"),
    ("明", "ming"), ("超", "chao"), ("秀", "xiu"), ("霞", "xia"), ("平", "ping"),
    ("刚", "gang"), ("桂", "gui"), ("英", "ying"), ("华", "hua"), ("玉", "yu"),
    ("兰", "lan"), ("文", "wen"), ("建", "jian"), ("国", "guo"), ("红", "hong"),
    ("晓", "xiao"), ("婷", "ting"), ("雪", "xue"), ("梅", "mei"), ("琳", "lin"),
    ("浩", "hao"), ("宇", "yu"), ("轩", "xuan"), ("子", "zi"), ("涵", "han"),
    ("欣", "xin"), ("怡", "yi"), ("佳", "jia"), ("嘉", "jia"), ("俊", "jun"),
    ("博", "bo"), ("思", "si"), ("雨", "yu"), ("晨", "chen"), ("阳", "yang"),
    ("一", "yi"), ("诺", "nuo"), ("泽", "ze"), ("瑞", "rui"), ("鹏", "peng"),
    ("飞", "fei"), ("鑫", "xin"), ("倩", "qian"), ("颖", "ying"), ("婉", "wan"),
    ("立", "li"), ("新", "xin"), ("海", "hai"), ("波", "bo"), ("斌", "bin"),
    ("志", "zhi"), ("峰", "feng"), ("辉", "hui"), ("亮", "liang"), ("凯", "kai"),
    ("欢", "huan"), ("璐", "lu"), ("蕾", "lei"), ("琪", "qi"), ("萌", "meng"),
    ("昊", "hao"), ("然", "ran"), ("天", "tian"), ("成", "cheng"), ("林", "lin"),
    ("宁", "ning"), ("慧", "hui"), ("楠", "nan"), ("彤", "tong"), ("铭", "ming"),
    ("睿", "rui"), ("安", "an"), ("乐", "le"), ("沐", "mu"), ("辰", "chen"),
    ("若", "ruo"), ("曦", "xi"), ("梓", "zi"), ("航", "hang"), ("旭", "xu"),
    ("东", "dong"), ("春", "chun"), ("秋", "qiu"),
]  # fmt: skip

# Two-character combinations that are ordinary words or place names, never drawn as names.
NOT_NAMES = frozenset(
    [
        "王国", "白天", "夏天", "黎明", "叶子", "万一", "向东", "向阳", "高新", "高峰",
        "高明", "金华", "龙华", "万宁", "常宁", "石英", "江宁", "方成", "常新", "成天",
        "江东", "海宁", "安宁", "龙泽", "文明", "东方", "向前", "于是", "马上", "方法",
        "黄金", "许多", "江湖", "金融", "高兴", "张开", "周末", "白云", "雷鸣", "常明",
        "金辉", "金鑫", "石林", "孔雀", "万安", "马明",
    ]
)  # fmt: skip

# (province, city or None for a municipality, districts, roads)
CN_GEO = [
    ("北京市", None, ["朝阳区", "海淀区", "东城区", "丰台区"],
     ["建国路", "中关村大街", "朝阳北路", "学院路", "望京街"]),
    ("上海市", None, ["浦东新区", "徐汇区", "静安区", "闵行区"],
     ["张江路", "漕溪北路", "南京西路", "虹梅路", "世纪大道"]),
    ("天津市", None, ["和平区", "南开区", "河西区"], ["南京路", "卫津路", "友谊路"]),
    ("重庆市", None, ["渝中区", "江北区", "沙坪坝区"], ["民权路", "建新北路", "小龙坎正街"]),
    ("广东省", "深圳市", ["南山区", "福田区", "龙岗区"], ["科苑路", "深南大道", "五和大道"]),
    ("广东省", "广州市", ["天河区", "越秀区", "番禺区"], ["天河路", "中山五路", "体育西路"]),
    ("浙江省", "杭州市", ["西湖区", "滨江区", "余杭区"], ["文三路", "江南大道", "文一西路"]),
    ("浙江省", "宁波市", ["鄞州区", "海曙区"], ["天童南路", "中山西路"]),
    ("江苏省", "南京市", ["鼓楼区", "玄武区", "江宁区"], ["中山路", "北京东路", "双龙大道"]),
    ("江苏省", "苏州市", ["姑苏区", "吴中区"], ["干将路", "东吴北路"]),
    ("四川省", "成都市", ["锦江区", "武侯区"], ["春熙路", "人民南路", "天府大道"]),
    ("湖北省", "武汉市", ["武昌区", "洪山区", "江汉区"], ["珞喻路", "中北路", "解放大道"]),
    ("陕西省", "西安市", ["雁塔区", "碑林区"], ["长安南路", "小寨西路"]),
    ("山东省", "青岛市", ["市南区", "崂山区"], ["香港中路", "海尔路"]),
    ("福建省", "厦门市", ["思明区", "湖里区"], ["湖滨南路", "嘉禾路"]),
    ("湖南省", "长沙市", ["岳麓区", "芙蓉区"], ["麓山南路", "五一大道"]),
    ("河南省", "郑州市", ["金水区", "二七区"], ["花园路", "大学路"]),
    ("辽宁省", "沈阳市", ["和平区", "沈河区"], ["太原街", "青年大街"]),
    ("云南省", "昆明市", ["五华区", "盘龙区"], ["人民中路", "北京路"]),
    ("黑龙江省", "哈尔滨市", ["南岗区", "道里区"], ["中山路", "中央大街"]),
    ("安徽省", "合肥市", ["蜀山区", "包河区"], ["长江西路", "马鞍山路"]),
    ("江西省", "南昌市", ["东湖区", "红谷滩区"], ["八一大道", "红谷中大道"]),
    ("广西壮族自治区", "南宁市", ["青秀区", "西乡塘区"], ["民族大道", "大学东路"]),
    ("内蒙古自治区", "呼和浩特市", ["新城区", "赛罕区"], ["新华大街", "大学西街"]),
]  # fmt: skip

# (province, city, county-level division) for rural addresses
CN_COUNTIES = [
    ("浙江省", "湖州市", "长兴县"), ("湖南省", "长沙市", "宁乡市"), ("河北省", "保定市", "涞源县"),
    ("安徽省", "六安市", "霍山县"), ("四川省", "绵阳市", "三台县"), ("山东省", "临沂市", "沂水县"),
    ("江西省", "赣州市", "于都县"), ("河南省", "信阳市", "固始县"),
]  # fmt: skip
TOWNS = ["城关镇", "新塘镇", "白马镇", "青山镇", "石桥镇", "东坝镇", "柳溪乡"]
VILLAGES = ["红旗村", "桥头村", "石门村", "新民村", "下塘村", "杨家湾村", "岭头村"]
COMMUNITIES = [
    "阳光花园", "翠湖苑", "金桥新村", "万科城", "绿地世纪城", "碧桂园", "保利香槟国际",
    "华润二十四城", "锦绣江南", "滨江花园", "紫荆公寓", "龙湖春江郦城", "中海国际社区",
    "幸福里", "桃源居", "康乐小区", "梧桐苑", "星河湾",
]  # fmt: skip

# For bilingual cards: (city, City, district, District, road, Road)
CN_GEO_EN = [
    ("深圳市", "Shenzhen", "南山区", "Nanshan District", "科苑路", "Keyuan Road"),
    ("杭州市", "Hangzhou", "西湖区", "Xihu District", "文三路", "Wensan Road"),
    ("上海市", "Shanghai", "浦东新区", "Pudong New Area", "张江路", "Zhangjiang Road"),
    ("北京市", "Beijing", "海淀区", "Haidian District", "中关村大街", "Zhongguancun Street"),
    ("广州市", "Guangzhou", "天河区", "Tianhe District", "体育西路", "Tiyu West Road"),
    ("成都市", "Chengdu", "武侯区", "Wuhou District", "人民南路", "Renmin South Road"),
    ("南京市", "Nanjing", "鼓楼区", "Gulou District", "中山路", "Zhongshan Road"),
]

RESIDENT_AREA_CODES = [
    "110101", "110105", "110108", "310101", "310115", "310104", "440106", "440305", "440304",
    "330106", "330108", "320102", "320106", "510104", "510107", "420106", "420111", "610113",
    "370202", "500103", "120101", "350203", "430104", "210102", "230103", "530102", "410105",
    "340104", "360102", "450103", "150102", "130602", "411502", "522601", "620102", "640104",
]  # fmt: skip

CN_MOBILE_PREFIXES = [
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "145", "147",
    "150", "151", "152", "153", "155", "156", "157", "158", "159", "166", "173", "175",
    "176", "177", "178", "180", "181", "182", "183", "184", "185", "186", "187", "188",
    "189", "191", "193", "195", "198", "199",
]  # fmt: skip

US_AREA_CODES = [
    "212", "312", "415", "617", "646", "702", "713", "206", "303", "404", "512", "213",
    "305", "503", "602", "718", "919", "972", "608", "614", "217", "520", "916", "425",
]  # fmt: skip
US_CITIES = [
    ("Springfield", "IL"), ("Austin", "TX"), ("Portland", "OR"), ("Columbus", "OH"),
    ("Madison", "WI"), ("Boulder", "CO"), ("Raleigh", "NC"), ("Sacramento", "CA"),
    ("Tucson", "AZ"), ("Albany", "NY"), ("Cambridge", "MA"), ("Bellevue", "WA"),
    ("Ann Arbor", "MI"), ("Savannah", "GA"), ("Des Moines", "IA"),
]  # fmt: skip
US_STREETS = [
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm Street", "Washington Blvd",
    "Park Avenue", "Lincoln Way", "Sunset Blvd", "Pine Road", "2nd St", "Lakeview Terrace",
    "N Broadway", "W 34th St", "Harbor Court", "Chestnut Hill Rd",
]  # fmt: skip

EMAIL_DOMAINS_CN = ["163.com", "126.com", "qq.com", "sina.com", "foxmail.com", "139.com"]
EMAIL_DOMAINS_EN = ["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com"]
EMAIL_DOMAINS_CORP = [
    "hzdata.com.cn", "xinghe-tech.cn", "acme-robotics.com", "northwind.io", "globex.co",
    "mail.tsinghua.edu.cn", "zju.edu.cn", "lanting-law.cn", "example.com", "corp.example.org",
]  # fmt: skip

CARD_BINS = [
    ("622202", 19), ("621700", 19), ("622848", 19), ("621226", 19), ("623058", 19),
    ("622588", 16), ("625907", 16), ("628290", 16), ("622609", 16), ("621483", 16),
    ("4", 16), ("4", 16), ("51", 16), ("53", 16), ("55", 16), ("37", 15),
]  # fmt: skip
CN_BANKS = [
    "中国工商银行", "中国建设银行", "中国农业银行", "招商银行", "中国银行", "交通银行",
    "兴业银行", "浦发银行", "中信银行", "平安银行",
]  # fmt: skip


class Values:
    """Draws every value of one corpus from one seed (random.Random and two Fakers)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.zh = Faker("zh_CN")
        self.zh.seed_instance(seed)
        self.en = Faker("en_US")
        self.en.seed_instance(seed + 7919)

    # -- small helpers --
    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def digits(self, n: int) -> str:
        return "".join(str(self.r.randrange(10)) for _ in range(n))

    # -- PERSON ----------------------------------------------------------------------------
    def _zh_name_parts(self) -> tuple[str, str]:
        """(Chinese name, pinyin "Surname Given") from this module's tables."""
        while True:
            if self.chance(0.15):
                sur, sur_py = self.pick(COMPOUND_SURNAMES)
            else:
                sur, sur_py = self.pick(SURNAMES)
            given = [self.pick(GIVEN_CHARS) for _ in range(1 if self.chance(0.4) else 2)]
            name = sur + "".join(c for c, _ in given)
            if name not in NOT_NAMES and len({c for c, _ in given}) == len(given):
                py_given = "".join(p for _, p in given)
                return name, f"{sur_py} {py_given.capitalize()}"

    def zh_name_text(self) -> str:
        roll = self.r.random()
        if roll < 0.5:
            while True:
                name = self.zh.name()
                if name not in NOT_NAMES:
                    return name
        if roll < 0.62:
            sur, _ = self.pick(COMPOUND_SURNAMES)
            return sur + self.zh.first_name()
        return self._zh_name_parts()[0]

    def zh_name(self) -> Lab:
        return Lab(self.zh_name_text(), PERSON)

    def zh_name_with_pinyin(self) -> tuple[Lab, Lab]:
        name, py = self._zh_name_parts()
        return Lab(name, PERSON), Lab(py, PERSON)

    def pinyin_name(self) -> Lab:
        roll = self.r.random()
        if roll < 0.35:
            _, py = self._zh_name_parts()
            return Lab(py, PERSON)
        if roll < 0.55:
            _, py = self._zh_name_parts()
            sur, given = py.split(" ")
            return Lab(f"{given} {sur}", PERSON)
        if roll < 0.65:
            _, py = self._zh_name_parts()
            sur, given = py.split(" ")
            return Lab(f"{sur.upper()} {given}", PERSON)
        return Lab(self.zh.romanized_name(), PERSON)  # Faker's: given name first

    def en_name_text(self) -> str:
        first, last = self.en.first_name(), self.en.last_name()
        roll = self.r.random()
        if roll < 0.12:
            return f"{first} {self.pick('ABCDEFGHJKLMNPRSTW')}. {last}"
        if roll < 0.17:
            return f"{first} {last}-{self.en.last_name()}"
        return f"{first} {last}"

    def en_name(self) -> Lab:
        return Lab(self.en_name_text(), PERSON)

    def zh_title(self) -> str:
        return self.pick(["先生", "女士", "经理", "老师", "主任", "总", "师傅", "医生"])

    def en_title(self) -> str:
        return self.pick(["Dr. ", "Mr. ", "Ms. ", "Mrs. ", "Prof. "])

    def sex_zh(self) -> str:
        return self.pick(["男", "女"])

    # -- ADDRESS ---------------------------------------------------------------------------
    def _room(self) -> str:
        return f"{self.r.randint(1, 33)}{self.r.randint(1, 4):02d}"

    def building_part(self) -> str:
        """The part below the street number: building, unit, room."""
        b, u, room = self.r.randint(1, 28), self.r.randint(1, 4), self._room()
        return self.pick(
            [
                f"{b}栋{room}室",
                f"{b}栋{u}单元{room}室",
                f"{b}号楼{u}单元{room}",
                f"{b}幢{room}室",
                f"{self.pick('ABCDEF')}座{room}室",
                f"{b}号楼{u}单元{room}室",
            ]
        )

    def partial_address(self) -> Lab:
        if self.chance(0.3):
            return Lab(self.pick(COMMUNITIES) + self.building_part(), ADDRESS)
        return Lab(self.building_part(), ADDRESS)

    def zh_address_text(self, level: str | None = None) -> str:
        level = level or self.pick(["full", "full", "full", "city", "road", "rural", "faker"])
        num = f"{self.r.randint(1, 999)}号"
        below = self.building_part() if self.chance(0.8) else ""
        community = self.pick(COMMUNITIES) if self.chance(0.4) else ""
        if level == "rural":
            prov, city, county = self.pick(CN_COUNTIES)
            head = prov + city if self.chance(0.7) else city
            return (
                f"{head}{county}{self.pick(TOWNS)}{self.pick(VILLAGES)}"
                f"{self.r.randint(1, 12)}组{self.r.randint(1, 80)}号"
            )
        if level == "faker":
            district = self.zh.district() + "区"
            road = self.pick(self.pick(CN_GEO)[3])
            return f"{self.zh.province()}{self.zh.city()}{district}{road}{num}{community}{below}"
        prov, city, districts, roads = self.pick(CN_GEO)
        district, road = self.pick(districts), self.pick(roads)
        if level == "road":
            return f"{road}{num}{community}{below or self.building_part()}"
        if level == "city":
            head = city or prov
            return f"{head}{district}{road}{num}{community}{below}"
        return f"{prov}{city or ''}{district}{road}{num}{community}{below}"

    def zh_address(self, level: str | None = None) -> Lab:
        return Lab(self.zh_address_text(level), ADDRESS)

    def zh_address_with_english(self) -> tuple[Lab, Lab]:
        city, city_en, dist, dist_en, road, road_en = self.pick(CN_GEO_EN)
        num, b, room = self.r.randint(1, 999), self.r.randint(1, 20), self._room()
        zh = f"{city}{dist}{road}{num}号{b}栋{room}室"
        en = f"Room {room}, Building {b}, No. {num} {road_en}, {dist_en}, {city_en}"
        return Lab(zh, ADDRESS), Lab(en, ADDRESS)

    def us_address_text(self) -> str:
        number = str(self.r.randint(1, 9899))
        street = self.pick(US_STREETS) if self.chance(0.5) else self.en.street_name()
        if self.chance(0.55):
            city, state = self.pick(US_CITIES)
            zipcode = self.en.zipcode_in_state(state)
        else:
            city, state, zipcode = self.en.city(), self.en.state_abbr(), self.en.zipcode()
        if self.chance(0.1):
            zipcode += f"-{self.digits(4)}"
        second = ""
        if self.chance(0.3):
            second = self.pick(
                [
                    f" Apt {self.r.randint(1, 30)}{self.pick('ABCD')}",
                    f", Apt. {self.r.randint(100, 999)}",
                    f", Suite {self.r.randint(100, 900)}",
                    f" #{self.r.randint(2, 40)}",
                    f", Unit {self.r.randint(1, 24)}",
                ]
            )
        return f"{number} {street}{second}, {city}, {state} {zipcode}"

    def us_address(self) -> Lab:
        return Lab(self.us_address_text(), ADDRESS)

    # -- identifiers -----------------------------------------------------------------------
    def cn_phone(self) -> Lab:
        n = self.pick(CN_MOBILE_PREFIXES) + self.digits(8)
        roll = self.r.random()
        if roll < 0.6:
            text = n
        elif roll < 0.75:
            text = f"{n[:3]} {n[3:7]} {n[7:]}"
        elif roll < 0.85:
            text = f"{n[:3]}-{n[3:7]}-{n[7:]}"
        elif roll < 0.92:
            text = f"+86 {n}"
        elif roll < 0.97:
            text = f"+86 {n[:3]} {n[3:7]} {n[7:]}"
        else:
            text = f"+86-{n}"
        return Lab(text, CN_PHONE)

    def masked_cn_phone(self) -> str:
        n = self.pick(CN_MOBILE_PREFIXES) + self.digits(8)
        return f"{n[:3]}****{n[7:]}"

    def resident_id_text(self, year_from: int = 1952, year_to: int = 2004) -> str:
        area = self.pick(RESIDENT_AREA_CODES)
        year = self.r.randint(year_from, year_to)
        month = self.r.randint(1, 12)
        day = self.r.randint(1, 28)
        body = f"{area}{year}{month:02d}{day:02d}{self.digits(3)}"
        check = gb11643_check_char(body)
        if check == "X" and self.chance(0.08):
            check = "x"
        return body + check

    def resident_id(self, year_from: int = 1952, year_to: int = 2004) -> Lab:
        return Lab(self.resident_id_text(year_from, year_to), CN_RESIDENT_ID)

    def us_phone(self) -> Lab:
        area = self.pick(US_AREA_CODES)
        exch = f"{self.r.randint(2, 9)}{self.digits(2)}"
        if exch[1:] == "11":
            exch = exch[0] + "21"
        line = self.digits(4)
        text = self.pick(
            [
                f"({area}) {exch}-{line}",
                f"({area}) {exch}-{line}",
                f"{area}-{exch}-{line}",
                f"{area}.{exch}.{line}",
                f"+1 {area} {exch} {line}",
                f"+1 ({area}) {exch}-{line}",
                f"1-{area}-{exch}-{line}",
                f"{area}-{exch}-{line}",
            ]
        )
        return Lab(text, US_PHONE)

    def card_digits(self) -> str:
        prefix, length = self.pick(CARD_BINS)
        body = prefix + self.digits(length - len(prefix) - 1)
        return body + luhn_check_digit(body)

    def bank_card(self) -> Lab:
        n = self.card_digits()
        roll = self.r.random()
        if roll < 0.55:
            text = n
        elif len(n) == 15:
            text = f"{n[:4]} {n[4:10]} {n[10:]}"
        elif roll < 0.9:
            text = " ".join(n[i : i + 4] for i in range(0, len(n), 4))
        else:
            text = "-".join(n[i : i + 4] for i in range(0, len(n), 4))
        return Lab(text, BANK_CARD)

    def masked_card(self) -> str:
        n = self.card_digits()
        return self.pick([f"{n[:4]} **** **** {n[-4:]}", f"{n[:6]}******{n[-4:]}"])

    def email(self, name: str | None = None, corp: bool | None = None) -> Lab:
        if corp is None:
            corp = self.chance(0.4)
        if name and all(c.isascii() for c in name) and self.chance(0.8):
            parts = [p.strip(".").lower() for p in name.replace("-", " ").split() if p]
            parts = [p for p in parts if len(p) > 1] or parts
            first, last = parts[0], parts[-1]
            local = self.pick(
                [
                    f"{first}.{last}",
                    f"{first}{last}",
                    f"{first[0]}{last}",
                    f"{first}_{last}{self.r.randint(1, 99)}",
                    f"{last}.{first}",
                    f"{first}{self.r.randint(1970, 2005)}",
                ]
            )
        elif self.chance(0.15):
            return Lab(f"{self.r.randint(10000, 2999999999)}@qq.com", EMAIL)
        else:
            local = self.en.user_name()
        if self.chance(0.04):
            local += "+" + self.pick(["work", "lease", "news", "shop"])
        if corp:
            domain = self.pick(EMAIL_DOMAINS_CORP)
        else:
            domain = self.pick(EMAIL_DOMAINS_CN + EMAIL_DOMAINS_EN)
        return Lab(f"{local}@{domain}", EMAIL)

    # -- values that are not personal data ---------------------------------------------------
    def date_zh(self) -> str:
        return f"{self.r.randint(2019, 2025)}年{self.r.randint(1, 12)}月{self.r.randint(1, 28)}日"

    def date_iso(self) -> str:
        return (
            f"{self.r.randint(2019, 2025)}-{self.r.randint(1, 12):02d}-{self.r.randint(1, 28):02d}"
        )

    def date_us(self) -> str:
        return (
            f"{self.r.randint(1, 12):02d}/{self.r.randint(1, 28):02d}/{self.r.randint(2019, 2025)}"
        )

    def date_en(self) -> str:
        months = "January February March April May June July August September October November"
        month = self.pick([*months.split(), "December"])
        return f"{month} {self.r.randint(1, 28)}, {self.r.randint(2019, 2025)}"

    def time(self) -> str:
        return f"{self.r.randint(0, 23):02d}:{self.r.randint(0, 59):02d}"

    def amount(self, lo: int = 20, hi: int = 20000) -> str:
        return f"{self.r.randint(lo, hi):,}.{self.r.randint(0, 99):02d}"

    def order_no(self, n: int = 19) -> str:
        return str(self.r.randint(1, 9)) + self.digits(n - 1)

    def bank_name(self) -> str:
        return self.pick(CN_BANKS)

    def city_name(self) -> str:
        return self.zh.city_name()

    def company_zh(self) -> str:
        return self.zh.city_name() + self.zh.company()
