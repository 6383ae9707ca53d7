"""The data the PERSON and ADDRESS scans read: word lists written here (surnames,
given-name characters, titles, labels, pinyin, English context words, address suffixes)
and the tables loaded once, lazily, from installed packages' data files (jieba's
dictionary, the ``names`` census lists, cpca's administrative divisions); and
``finditer_in``, a scan that runs a costly pattern only where a cheap one says it can match.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_CJK = "\u3400-\u9fff"
_CJK_RE = re.compile(f"[{_CJK}]")


def _words(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


def _alt(words: Iterable[str]) -> str:
    """A regular expression for any of ``words``, factored as a trie: ``re`` tries the
    branches of an alternation one by one, so shared prefixes are tried once."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        end = "" in node
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            return f"(?:{body})?"
        return body

    return emit(trie)


# A window of a scan: where a match may start (``lo`` to ``hi``) and where every attempt
# from there has stopped reading (``stop``).
Window = tuple[int, int, int]


def finditer_in(
    pattern: re.Pattern[str], text: str, windows: Iterable[Window]
) -> Iterator[re.Match[str]]:
    """What ``pattern.finditer(text)`` finds when no match can start outside ``windows``:
    a cheap scan for something every match holds (a colon, a surname after a letter) says
    where to look, and the costly pattern runs only there. A window ``(lo, hi, stop)`` says
    that a match may start from ``lo`` to ``hi`` and reads nothing (its lookahead included)
    at or past ``stop``; it is searched on the text cut there. That finds what the whole
    text has as long as the pattern only asks for characters to be there (no ``$``, ``\\b``
    or negative lookaround, which a cut could make true) and never matches the empty string:
    a cut can then only make an attempt fail, and none that could succeed is cut."""
    pos, size = 0, len(text)
    for lo, hi, stop in _merged(windows):
        at = max(lo, pos)
        while at <= hi:
            m = pattern.search(text, at, min(stop, size))
            if m is None or m.start() > hi:
                break
            yield m
            pos = at = m.end()


def _merged(windows: Iterable[Window]) -> list[Window]:
    """Windows whose starts overlap as one (reading as far as the farthest)."""
    out: list[Window] = []
    for lo, hi, stop in sorted(windows):
        if out and lo <= out[-1][1]:
            last = out[-1]
            out[-1] = (last[0], max(last[1], hi), max(last[2], stop))
        else:
            out.append((max(0, lo), hi, stop))
    return out


# ------------------------------------------------------------------ surnames and given names

# Single-character surnames, roughly by frequency. ``_STRONG`` are those that, at the start of
# a short run of characters, are far more often a surname than the start of a word.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩邓冯曹彭曾肖田董潘袁蔡蒋余于杜叶"
    "程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付傅方邹熊白孟秦邱侯江尹薛闫阎段雷龙黎史陶"
    "贺毛郝顾龚邵万覃武钱戴严莫孔向常汤康易乔赖文施洪辛柯庄樊祝季葛殷温喻倪聂章鲁岳翟詹申"
    "欧耿关兰焦俞左柳甘包宁尚符舒阮纪梅童凌毕单裴霍涂成苗谷盛曲翁冉骆蓝路游靳管柴蒙鲍华祁"
    "蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿"
    "桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡"
    "鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻厉伊仝郜海阚花权强帅屠豆朴盖练"
    "廉禹井祖漆巴丰支卿国狄计索宣晋相初云容敬扈晁芮普阙浦戈伏鹿薄邸雍辜羊裘亓修邰赫杭况"
    "宿逯隆茹诸慕危亢嵇湛宾戎勾茅揭尉冶檀衣昝钮"
)
_STRONG = (
    "王李张刘陈杨黄赵吴周徐孙朱胡郭何罗郑梁谢宋唐许韩邓冯曹彭曾肖田董潘袁蔡蒋余杜叶程魏苏"
    "吕丁任卢姚沈钟姜崔谭陆范汪廖贾夏韦付傅邹熊孟秦邱侯尹薛闫阎段雷黎陶贺郝顾龚邵覃钱戴严"
    "莫孔汤康乔赖施洪辛柯庄樊祝葛殷温喻倪聂鲁岳翟詹耿焦俞柳符舒阮纪童凌裴霍涂苗盛翁冉骆靳"
    "柴鲍祁蒲滕饶牟缪褚娄窦戚岑瞿佟臧闵苟邬卞姬栾隋刁巫寇桑甄巩佘邝鞠冀郁胥栗鄢谌奚粟冼蔺"
    "阚屠廉禹卿狄晁芮阙邸雍辜裘亓邰赫逯茹嵇湛昝钮"
)
_COMPOUND = _words(
    "欧阳 司马 诸葛 上官 东方 皇甫 慕容 令狐 端木 公孙 夏侯 尉迟 长孙 宇文 轩辕 司徒 西门"
    " 南宫 独孤 呼延 澹台 公冶 宗政 濮阳 淳于 太史 申屠 钟离 闻人 万俟 赫连 东郭 百里"
    " 拓跋 司空 左丘"
)
_SURNAME_SET = frozenset(_SURNAMES)
_STRONG_SET = frozenset(_STRONG)
_COMPOUND_SET = frozenset(_COMPOUND)
_SURNAME_CLASS = "".join(dict.fromkeys(_SURNAMES))
# Where a name may start: a surname, or the first character of a compound one.
_START_CLASS = "".join(dict.fromkeys(_SURNAMES + "".join(c[0] for c in _COMPOUND)))
_START_SET = frozenset(_START_CLASS)

# Characters common in given names (modern and classic). Others count when jieba's person
# names use them often; ``_NOT_GIVEN`` never do.
_GIVEN = frozenset(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华玉兰萍红鹏辉玲燕建国峰波斌宇浩凯健俊帆"
    "帅旭宁琳雪莉婷晶欣颖倩琪瑶婧慧佳怡悦涵晨阳晓文博昊然轩梓睿嘉子豪宏志新伦亮成龙飞云海江"
    "山林松柏森楠荣贵福禄寿喜庆春夏秋冬梅竹菊莲荷桃凤鹤莺鸿雁翔航天东中正义礼智信仁德忠孝勤"
    "良善美丹青彤彩虹露雨霜冰清洁纯真诚淑娴雅婉柔蓉芸芬芝莹萱菲薇蕾蓓芮茜茹蕊琦瑾瑜璐瑞璇珊"
    "珍珠琴瑛玥钰铭锋锐钧鑫锦绣维纲继绍经纬永长久远达通顺利发富裕丰乐康安泰和祥吉光耀辰星月"
    "晖昌盛兴旺隆坤乾元振宗尧舜禹彬杉桐枫桦楷栋才力学思念慈惠恩爱心意情怀宽容敬崇尚高峻岭岩"
    "石坚毅威武雄壮娇媚婵嫦影珑灿煌希望鸣凡舟洲川河湖泉溪浪澜潇沛泽润深源瀚淼垚焱犇琼瑰璧"
    "珏珂珈珩琛琰瑄瑗璋璟璨钢铁铮骏驰骁腾跃翼羽凌霄霓雯霏霖震雷岚巍嵩岳昆仑培基均墨默恬谧"
    "硕彦朗逸昂扬启图程懿馨香蔓茗蕙蕴萌苗茂葆菁莎苹芹茵荟艺宜谊仪依伊亿奕弈翊羿益颐钦沁擎"
    "卿晴晋进谨劲靖璟竞镜境民珉旻岷玟汶纹滨缤皓颢灏赫恒衡弘泓洪翰晗菡汉寒韩杭行昕歆幸杏"
    "胜圣晟升生笙声绍少韶劭哲喆臻祯桢甄峥征政筝之枝知稚仲众周宙朱卓灼倬琢紫姿滋梓佐泽彰樟"
    "昭朝照兆肇一小大二三四五六九万千百根柱栓锁宝贝妮娅媛婕姝妍娉姣嫣婀娥婉倩蓝秋丹彤"
    "芊芷若兮伶俐晏宸煜烨炜焕烽熙熠燊炎耀曦晞暄暖昀旸晟曜昱晔湘沅涓淇澄漪瀛洛潼浠涵溢"
    "毓育玮琨瑶琬瑭璞璐瑷琇珺玫玲瑀琪楚翠霭霁雍鼎宪宣宣勋斐韬略锴镇铠键钊铎铖钦"
)
_NOT_GIVEN = frozenset(
    "的了是在与及或也都就而但并且被把将对从向往到给让使由为以于因所之其这那哪此彼某每各该"
    "本我你他她它们您咱自己谁啥么怎样吗呢吧啊呀哦嘛着过地得不没无非未别很太更还又再只已须请"
    "等说讲问答看听想做去来上下里外后内间时年日号点分秒个些位名次种件条块元角岁几多少半第零"
    "两和等及市省区县路街号楼室先女士姐总工部局处科院校所司厂店馆会"
)
# Titles right after a name (outside the span); a name never ends in one.
_TITLES = _words(
    "先生 女士 小姐 医生 医师 大夫 经理 总经理 副经理 老师 教授 副教授 主任 副主任 护士"
    " 护士长 律师 同学 总监 主管 院长 校长 局长 处长 科长 部长 书记 董事长 总裁 工程师"
    " 会计 警官 法官 记者 博士 阿姨 叔叔 师傅 同志 老板 总 工 秘书 助理 主席"
)
_TITLE_SET = frozenset(_TITLES)
# Titles that are evidence of their own (a title of one character, 总 or 工, is not).
_STRONG_TITLES = [t for t in _TITLES if len(t) > 1]
# Verbs and particles right after a name.
_AFTER_VERBS = _words(
    "说 表示 反映 来电 致电 投诉 入院 出院 就诊 签字 签收 确认 指出 认为 介绍 告诉 透露"
    " 的电话 的手机 的身份证 的邮箱 的地址 的银行卡 的账户 本人 主持 出席 发言 强调 签署"
    " 负责 对接 帮忙 安排 处理 跟进 协助 陪同 回复 联系"
)
# Labels right before a name.
_LABELS = _words(
    "姓名 患者 病人 收件人 收货人 寄件人 发件人 联系人 申请人 客户 负责人 经办人 签名"
    " 主治医师 主治医生 员工 家属 户主 持卡人 开户名 开户人 法定代表人 致 尊敬的 亲爱的"
    " 被保险人 投保人 受益人 借款人 监护人 收款人 乘客 名叫 发言人 记者 通讯员"
    " 业主 车主 本人 学生 家长 审核 审核人 甲方 乙方 参会人 记录人 付款人 处理人 入住人"
    " 开票人 回访人 复核人 经手人 制单人 填表人 联络人 报告人 驾驶人 驾驶员 租客 房东"
    " 学员 考生 用户 会员 买家 卖家 店主 病患 产妇 新生儿 死者 嫌疑人 当事人 原告 被告"
    " 代理人 委托人 证人 担保人 保证人 法人 董事长 总经理 Customer customer Contact"
    " 管家 骑手 快递员 配送员 司机 保安 保洁 客服 护工 业务员 销售 房东 中介 导游 厨师 前台"
    " 户名 站长 民警 辅警 顾问 找"
    " contact Client client Patient patient Rep. rep. Signed signed By: by:"
)

# ------------------------------------------------------------------ pinyin

_SYLLABLES = _words(
    "a ai an ang ao ba bai ban bang bao bei ben beng bi bian biao bie bin bing bo bu ca"
    " cai can cang cao ce cen ceng cha chai chan chang chao che chen cheng chi chong chou"
    " chu chua chuai chuan chuang chui chun chuo ci cong cou cu cuan cui cun cuo da dai"
    " dan dang dao de dei den deng di dia dian diao die ding diu dong dou du duan dui dun"
    " duo e ei en eng er fa fan fang fei fen feng fo fou fu ga gai gan gang gao ge gei"
    " gen geng gong gou gu gua guai guan guang gui gun guo ha hai han hang hao he hei hen"
    " heng hong hou hu hua huai huan huang hui hun huo ji jia jian jiang jiao jie jin"
    " jing jiong jiu ju juan jue jun ka kai kan kang kao ke kei ken keng kong kou ku kua"
    " kuai kuan kuang kui kun kuo la lai lan lang lao le lei leng li lia lian liang liao"
    " lie lin ling liu lo long lou lu luan lue lun luo lv lve lyu ma mai man mang mao me"
    " mei men meng mi mian miao mie min ming miu mo mou mu na nai nan nang nao ne nei nen"
    " neng ni nian niang niao nie nin ning niu nong nou nu nuan nue nuo nv nve nyu o ou"
    " pa pai pan pang pao pei pen peng pi pian piao pie pin ping po pou pu qi qia qian"
    " qiang qiao qie qin qing qiong qiu qu quan que qun ran rang rao re ren reng ri rong"
    " rou ru rua ruan rui run ruo sa sai san sang sao se sen seng sha shai shan shang"
    " shao she shei shen sheng shi shou shu shua shuai shuan shuang shui shun shuo si"
    " song sou su suan sui sun suo ta tai tan tang tao te teng ti tian tiao tie ting tong"
    " tou tu tuan tui tun tuo wa wai wan wang wei wen weng wo wu xi xia xian xiang xiao"
    " xie xin xing xiong xiu xu xuan xue xun ya yan yang yao ye yi yin ying yo yong you"
    " yu yuan yue yun za zai zan zang zao ze zei zen zeng zha zhai zhan zhang zhao zhe"
    " zhei zhen zheng zhi zhong zhou zhu zhua zhuai zhuan zhuang zhui zhun zhuo zi zong"
    " zou zu zuan zui zun zuo"
)
# One or two syllables, optionally split by a hyphen or an apostrophe (Xiaoming, Xiao-Ming).
_PINYIN_SURNAMES = frozenset(
    _words(
        "wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he lin luo gao"
        " zheng liang xie song tang han deng feng cao peng zeng xiao tian dong pan yuan cai"
        " jiang yu du ye cheng wei su lv lyu ding ren lu yao shen zhong cui tan fan liao shi"
        " jin jia xia fu fang zou xiong bai meng qin qiu hou yin xue yan duan lei long tao"
        " mao hao gu gong shao wan qian dai mo kong xiang chang kang yi qiao lai wen hong xin"
        " ke zhuang ji ge ni nie yue zhan ou geng guan lan jiao zuo gan bao ning shang shu"
        " ruan mei tong ling bi shan pei huo tu miao sheng qu weng ran you chai hua qi pu"
        " teng rao mou ai mu nong si zhuo jian che lian mai chu lou dou cen jing dang fei bo"
        " leng xi mi zong gui quan ying zang min gou bian luan sui diao sha rong kou sang"
        " lang zhen cong ao ming she chi zha kuang ju hui nan ban lao pi xian man hai qiang"
        " shuai zu ba zhi qing ping suo xuan yun chao rui que yong xiu tai hang bin xing heng"
        " niu piao di ouyang sima zhuge shangguan dongfang huangfu murong linghu duanmu"
        " gongsun xiahou yuchi zhangsun yuwen xuanyuan situ ximen nangong dugu huyan tantai"
        " gongye zongzheng puyang chunyu taishi shentu zhongli wenren helian dongguo baili"
        " tuoba sikong zuoqiu"
    )
)
# Pinyin surnames that are also common English words: taken only with a given name of two
# syllables, in capitals, or with context.
_PINYIN_AMBIGUOUS = frozenset(
    _words(
        "he long fan song sun pan tang gong ding man hang bin ban lang mao mo bo you ban shi"
        " ma bao lai gu hu yu di lou"
    )
)
# Two capitalised pinyin words that are not a name.
_PINYIN_NOT_NAMES = frozenset(
    _words(
        "hong kong|feng shui|yin yang|ni hao|xie xie|xi an|tai chi|qi gong|wu shu|kung fu"
        "|gan bei|jiang hu|ma jiang|bai jiu|mao tai|da jia|hao de|zai jian|shang hai|bei jing"
        "|guang zhou|shen zhen|hang zhou|nan jing|wu han|cheng du|chong qing|tian jin|xia men"
        "|su zhou|qing dao|da lian|he nan|he bei|hu nan|hu bei|shan xi|guang xi|yun nan"
        "|gui zhou|jiang su|zhe jiang|an hui|fu jian|jiang xi|shan dong|hai nan|si chuan"
        "|gan su|qing hai|xin jiang|xi zang|ning xia|ji lin|liao ning|hei long|tai wan|ao men"
        "|xiang gang|bao zi|jiao zi|dim sum|wan ton|chow mein|lo mein|bok choy|pin yin|han zi"
        "|ren min|morgan stanley|dow jones|rolls royce|harley davidson|mercedes benz"
        "|johnson controls|lockheed martin|marks spencer|procter gamble|charles schwab"
        "|morgan chase|wells fargo|ralph lauren|calvin klein|tommy hilfiger|kenneth cole"
        "|hugh boss|harris teeter|john deere|jack daniels|ben jerry|walt disney|carson city"
        "|jackson hole|santa claus",
        "|",
    )
)

_SYLLABLE_SET = frozenset(_SYLLABLES)

# ------------------------------------------------------------------ English

_EN_TITLES = (
    "Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sir|Dame|Lady|Lord|Rev|Fr|Capt|Sgt|Lt|Col|Gen|Hon"
    "|Judge|Officer|Nurse|Doctor|Madam|Mme|Mlle|Herr|Frau"
)
# First names in the census lists that are mostly ordinary words when capitalised.
_EN_AMBIGUOUS_FIRST = frozenset(
    _words(
        "will may june april august grace hope joy faith rose lily iris jade ruby amber"
        " crystal dawn summer autumn winter sky rain star page art bill mark pat sue rob guy"
        " jack frank earnest chance major king price sterling hunter cash chase miles wade"
        " dean drew gene ray rich don bob royal ivory golden young son lane bay rock forest"
        " marsh ford carol holly ivy violet heather cherry olive pearl ginger honey sunny"
        " ebony china india asia paris london florence georgia virginia carolina dakota"
        " jordan austin houston dallas denver phoenix sydney chelsea brooklyn madison lincoln"
        " washington christian angel baby love care cole dusty early free gay happy harmony"
        " heaven honor justice liberty lucky major merry misty noble patience pepper precious"
        " princess queen sage scarlet sharon shelby song sunshine trinity unique velvet west"
        " worth young will lee long sun tom ken"
    )
)
# Capitalised words that end a name candidate's chance: months, days, organisations, places.
_EN_STOP = frozenset(
    _words(
        "january february march april may june july august september october november"
        " december monday tuesday wednesday thursday friday saturday sunday today tomorrow"
        " yesterday inc corp corporation ltd llc plc co company group holdings partners"
        " associates bank university college school academy institute hospital clinic center"
        " centre foundation fund trust times post news journal herald tribune daily weekly"
        " teams office word excel cloud street st avenue ave road rd boulevard blvd lane ln"
        " drive court place square park beach city county valley springs hills heights falls"
        " island islands lake river bay harbor harbour mountain mountains creek airport"
        " station hall church cathedral museum library hotel airlines airways motors press"
        " review studios pictures records media labs systems technologies technology software"
        " solutions services industries international global day week month year era act law"
        " rule award prize cup league series festival conference summit protocol agreement"
        " treaty plan project program team committee council department ministry agency"
        " bureau service army navy force police party movement tower building bridge stadium"
        " arena gardens zoo mall market plaza show magazine channel network radio tv stores"
        " foods pharma energy oil gas power electric steel capital ventures exchange index"
        " dollar euro code language python java javascript rust linux windows android apple"
        " google microsoft amazon facebook meta twitter github docker kubernetes sql api sdk"
        " ai the a an and or of for in on at to by with from this that these those it its is"
        " are was were be been new old north south east west central united states state"
        " america american national federal royal general great grand saint san santa los las"
        " el la le de del di da van von der des du st mount fort port dear hi hello hey"
        " thanks thank regards best sincerely cheers yours kind warm welcome please note attn"
        " attention re fw fwd subject name patient contact signed by cc to customer client"
        " applicant employee author recipient sender emergency i we you he she they my our"
        " your his her their me us him them mr mrs ms dr prof sir madam chapter section"
        " figure table page volume part appendix version release edition christmas easter"
        " thanksgiving halloween valentine"
    )
)
# Words just before a name (case ignored; trailing ``:``, ``,`` and spaces too).
_EN_CONTEXT_WORDS = frozenset(
    _words(
        "dear|hi|hello|hey|thanks|thank you|regards|best regards|kind regards|sincerely"
        "|cheers|yours|yours truly|best wishes|name|full name|patient|patient name|contact"
        "|contact person|signed|signed by|signature|attn|attention|customer|client|applicant"
        "|employee|author|recipient|sender|emergency contact|next of kin|guardian|cardholder"
        "|account holder|passenger|beneficiary|insured|witness|prepared by|approved by"
        "|reviewed by|written by|ship to|bill to|deliver to|care of|c/o|spoke with|met with"
        "|called|emailed|ask|asked|tell|told|meet|met|visited by|referred by|according to"
        "|manager|director|doctor|nurse|officer|agent|representative|spoke to|talked to",
        "|",
    )
)
# Words that are context only before a colon (From: John Smith, not "from John Smith").
_EN_COLON_WORDS = frozenset(["from", "to", "by", "cc", "per", "with", "attn", "re"])
_CN_CONTEXT_LABELS = (
    "姓名",
    "联系人",
    "收件人",
    "患者",
    "客户",
    "申请人",
    "负责人",
    "致",
)

# ------------------------------------------------------------------ addresses

# The characters a place name is written with: CJK less those that never are in one.
_ADDR_STOP = "的了在是住到从我你他她它们这那把被给说请吗呢吧啊址即或及并但而寄送位与为将已"


def _class_without(lo: int, hi: int, without: str) -> str:
    out, start = [], lo
    for cp in sorted({ord(c) for c in without if lo <= ord(c) <= hi}):
        if cp > start:
            out.append(f"{chr(start)}-{chr(cp - 1)}")
        start = cp + 1
    if start <= hi:
        out.append(f"{chr(start)}-{chr(hi)}")
    return "".join(out)


_ADMIN_SUFFIXES = tuple(
    _words("特别行政区 自治区 自治州 自治县 自治旗 地区 新区 省 市 盟 区 县 旗")
)
_TOWN_SUFFIXES = ("街道", "镇", "乡", "苏木")
# 道 (高新南一道) only right before a number: it ends 知道 and 道理 too.
_ROAD_SUFFIXES = ("大道", "大街", "路", "街", "巷", "胡同", "弄", "道")
_ESTATE_SUFFIXES = tuple(
    _words(
        "小区 花园 公寓 大厦 广场 新村 家园 大楼 园区 科技园 产业园 工业园"
        " 工业区 开发区 社区 村 苑 商城 写字楼 中心 山庄 别墅 公馆"
    )
)
_NUM_UNITS = tuple(_words("号院 号楼 号 塔 支弄 弄 栋 幢 座 单元 层 楼 室 房 组"))

# ------------------------------------------------------------------ loaded tables


@dataclass(frozen=True, slots=True)
class _Tables:
    lexicon: dict[str, tuple[int, str]]  # words that begin with a surname character
    common: dict[str, int]  # frequent two-character words (not places or names)
    given_counts: dict[str, int]  # characters in jieba's three-character person names
    first_names: dict[str, float]  # English first names: their share, in percent
    last_names: dict[str, int]  # English last names: their rank
    admin_full: frozenset[str]
    admin_short: frozenset[str]


_tables: _Tables | None = None
_lock = threading.Lock()


def _package_dir(package: str) -> Path:
    """Where an installed package's files are, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {package!r} package is not installed (see pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations)))


def _load() -> _Tables:
    global _tables
    if _tables is None:
        with _lock:
            if _tables is None:
                _tables = _build_tables()
    return _tables


def _build_tables() -> _Tables:
    jieba = (_package_dir("jieba") / "dict.txt").read_text(encoding="utf-8")
    starts = "".join(dict.fromkeys(_SURNAMES + "".join(c[0] for c in _COMPOUND)))
    lexicon: dict[str, tuple[int, str]] = {}
    given_counts: dict[str, int] = {}
    for word, freq, pos in re.findall(
        rf"^([{starts}]\S{{1,3}}) (\d+) ([a-z]+)$", jieba, re.MULTILINE
    ):
        lexicon[word] = (int(freq), pos)
        if pos == "nr" and len(word) == 3 and word[0] in _STRONG_SET and int(freq) <= 200:
            for ch in word[1:]:
                given_counts[ch] = given_counts.get(ch, 0) + 1
    common = {
        w: int(f)
        for w, f, pos in re.findall(r"^(\S\S) (\d{3,}) ([a-z]+)$", jieba, re.MULTILINE)
        if int(f) >= 100 and pos not in ("ns", "nr", "nrt", "nrfg", "nz", "nt")
    }

    names = _package_dir("names")
    first: dict[str, float] = {}
    for file in ("dist.male.first", "dist.female.first"):
        text = (names / file).read_text(encoding="ascii")
        for name, share in re.findall(r"^([A-Z]+) +([0-9.]+)", text, re.MULTILINE):
            key = name.lower()
            first[key] = max(first.get(key, 0.0), float(share))
    last_text = (names / "dist.all.last").read_text(encoding="ascii")
    last = {
        n.lower(): int(rank)
        for n, rank in re.findall(r"^([A-Z]+) +[0-9.]+ +[0-9.]+ +(\d+)", last_text, re.MULTILINE)
    }
    for surname in _PINYIN_SURNAMES:
        last.setdefault(surname, 5000)

    full: set[str] = set()
    with (_package_dir("cpca") / "resources" / "adcodes.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = row["name"].strip()
            if len(name) >= 2 and name not in ("市辖区", "县", "省直辖县级行政区划"):
                full.add(name)
    short = set()
    for name in full:
        for suffix in _ADMIN_SUFFIXES:
            if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                short.add(name[: -len(suffix)])
                break
    # Provinces and regions as people write them without their suffix.
    short.update(("内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门", "台湾"))
    return _Tables(lexicon, common, given_counts, first, last, frozenset(full), frozenset(short))
