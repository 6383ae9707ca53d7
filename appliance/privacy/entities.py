"""PERSON, ADDRESS and US_PHONE findings: names, postal addresses and North American phone
numbers in Chinese and English text.

Unlike the identifiers in ``detectors``, these have no check digits: a finding is decided
by a small score that adds up evidence. Every scan is a compiled regular expression that
starts with a literal or a character class (alternations are factored into tries), so C
skips the text between candidates; Python only looks at the candidates, and at a few
characters around each. Findings come back sorted and without overlaps (US_PHONE over
ADDRESS over PERSON, then the higher score); each score is 0.5 to 1.

PERSON
    Chinese names: a surname (single or compound) and one or two given-name characters.
    Evidence: a title right after (先生, 女士, 经理, 老师, ...; outside the span) or,
    weaker, right before (护士长刘红梅), a label right before (姓名：, 患者, 收件人, 尊敬的,
    ...), a verb or particle right after (说, 表示, 来电, 的电话, ，男, ...; a time word may
    come between: 张伟明天出院), a structure (a JSON key or a table column named
    姓名/name/联系人...), or a list (张伟、王芳、李秀英). A surname alone with a title
    (王先生, 老张) is not taken: it has no given name to mask. Words
    that begin with a surname character (王国, 高兴, 马上, 许多, 邢台, ...) are known from
    jieba's dictionary (its word frequencies and part-of-speech tags, read directly, not
    by segmenting the text). Without evidence only a clear name is taken: three
    characters, bounded by punctuation, not a word, with given-name characters.
    Pinyin names (Zhang Wei, WANG Fang, Ouyang Xiu, Wei Zhang): a pinyin surname and a
    given name of valid pinyin syllables.
    English names (First Last, First M. Last): a first name from the US census lists
    (the ``names`` package), a capitalised last name (strongest when a census surname),
    and context (Dr./Mr. before, outside the span; Dear, Name:, Patient:, signed, said).
ADDRESS
    Chinese addresses from the province down to the room, whole or partial, validated
    against the administrative divisions table that the ``cpca`` package ships (read as
    CSV: cpca itself is not imported, it needs pandas). English street addresses: a house
    number, a street name and type, then unit, city, state and ZIP as written.
US_PHONE
    NANP numbers written with separators: (555) 234-5678, 555-234-5678, +1-555-234-5678,
    +1 (555) 234-5678. Area code and exchange do not start with 0 or 1 and are not N11
    (``STRICT_EXCHANGE``); the area code's middle digit is not 9; China's 400 service
    numbers are not taken. Never a part of a longer number.

Tables load once, lazily, on the first call (about 0.2 s).
"""

from __future__ import annotations

import csv
import importlib.util
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.privacy.detectors import Finding

ENTITY_TYPES = ("PERSON", "ADDRESS", "US_PHONE")

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
_SYL_ALT = "|".join(sorted(_SYLLABLES, key=len, reverse=True))
_GIVEN_PINYIN = re.compile(rf"(?:{_SYL_ALT})(?:[-'’]?(?:{_SYL_ALT}))?", re.IGNORECASE)
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
_CN_CONTEXT_LABELS = ("姓名", "联系人", "收件人", "患者", "客户", "申请人", "负责人", "致")


def _en_context(text: str, start: int) -> bool:
    before = text[max(0, start - 32) : start].rstrip(" \t\r\n")
    colon = before.endswith((":", "："))
    before = before.rstrip(" \t\r\n:：,，-–—")
    if before.endswith(_CN_CONTEXT_LABELS):
        return True
    words = before.lower().split()[-3:]
    if not words:
        return False
    if colon and words[-1] in _EN_COLON_WORDS:
        return True
    return any(" ".join(words[k:]) in _EN_CONTEXT_WORDS for k in range(len(words)))


_EN_CONTEXT_AFTER = re.compile(
    r"(?:\s*,\s*(?:MD|M\.D\.|PhD|Ph\.D\.|Esq\.?|RN|DDS|CPA|Jr\.?|Sr\.?)\b"
    r"|\s+(?:said|says|told|wrote|writes|asked|replied|called|emailed|phoned|reported"
    r"|explained|noted|added|commented|confirmed|signed|joined|visited|complained|stated"
    r"|who|was born|is a|was a|has been|will be)\b"
    r"|['’]s\s+(?:phone|email|address|mother|father|wife|husband|son|daughter|account)\b)"
)
_CAPSEQ = re.compile(
    r"[A-Z](?<![A-Za-z0-9'’-][A-Z])(?:['’][A-Z])?[A-Za-zÀ-ÖØ-öø-ÿ]*(?:-[A-Za-z][a-zß-öø-ÿ]*)?"
    r"(?:[ ](?:[A-Z]\.|(?:(?:van|von|de|der|den|da|di|du|del|la|le|bin|al|dos|das)[ ])*"
    r"(?:[A-Z]['’])?[A-Z][A-Za-zÀ-ÖØ-öø-ÿ]*(?:-[A-Za-z][a-zß-öø-ÿ]*)?)){1,3}"
)
_EN_TITLE_WORDS = frozenset(_EN_TITLES.split("|"))
_TITLE_BEFORE = re.compile(rf"(?<![A-Za-z])(?:{_EN_TITLES})\.?[ \t]+$")
_TOKEN = re.compile(
    r"[A-Z]\.|(?:(?:van|von|de|der|den|da|di|du|del|la|le|bin|al|dos|das)[ ])*"
    r"(?:[A-Z]['’])?[A-Z][A-Za-zÀ-ÖØ-öø-ÿ]*(?:-[A-Za-z][a-zß-öø-ÿ]*)?"
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


_PLACE_CLASS = _class_without(0x3400, 0x9FFF, _ADDR_STOP)
_PLACE_RUN = re.compile(f"[{_PLACE_CLASS}]{{1,12}}$")
_ESTATE_GAP = re.compile(r"[\u4e00-\u9fffA-Za-z]{1,10}")
_GAP_OK = re.compile(f"[ \u3000]?[{_PLACE_CLASS}]{{0,12}}")
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
_KIND = {
    **{s: "admin" for s in _ADMIN_SUFFIXES},
    **{s: "town" for s in _TOWN_SUFFIXES},
    **{s: "road" for s in _ROAD_SUFFIXES},
    **{s: "estate" for s in _ESTATE_SUFFIXES},
}
_NUM_UNITS = tuple(_words("号院 号楼 号 塔 支弄 弄 栋 幢 座 单元 层 楼 室 房 组"))
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
    r"|(?P<street>(?=[0-9]{0,5}[A-Za-z]?[ ]+[A-Z0-9])))"
)
_US_PREFIX = re.compile(r"(?:\+1[-. ]?|(?<![0-9])1[-. ])$")


# ------------------------------------------------------------------ Chinese name scans

# A name just before a title, a verb or a sex (the match ends where the name ends): the
# scan starts at a surname character, so C skips the rest.

_SEX = "[，,（(][男女](?=[，,、；;）)\\s0-9]|$)"
# Where a name may end: a title, a verb, a sex after a comma (each scan starts with a
# literal or a character class, so C skips the text between them).
# Titles and verbs after a name; labels before one (the label's scan looks ahead for a
# surname, in C).
_CN_RIGHT = re.compile(_alt([*_STRONG_TITLES, *_AFTER_VERBS]))
_CN_LEFT = re.compile(
    rf"(?P<label>{_alt([*_LABELS, 'name', 'Name', 'NAME'])})"
    rf"[:：]?[ \t\u3000]{{0,2}}"
    rf"(?=[{_START_CLASS}][{_CJK}])"
)
# Labels that are evidence at a line's or a clause's start only; titles before a name
# (护士长刘红梅) are weaker evidence than labels.
_WEAK_LABELS = frozenset(("致", "客户", "员工", "记者", "通讯员"))
# Any label that names a person's role and ends in a colon (送检医生：, 承租方（乙方）：,
# 值班经理：), a speaker at a line's start (石宁：…, [17:30] 苏彬：…), and a name quoted alone
# or alone in a CSV cell ('司徒磊', ,萧桂香,).
_ROLE_ENDS = "人者方主员生师长理名警问"
_CN_ROLE_LABEL = re.compile(
    rf"(?:[{_CJK}]{{0,5}}[{_ROLE_ENDS}]|姓[ \u3000]+名)[0-9]{{0,2}}"
    rf"(?:[（(][^）)\n]{{1,6}}[）)])?[:：][ \t\u3000]{{0,2}}"
    rf"(?=[{_START_CLASS}][{_CJK}])"
)
# (a speaker's colon, a role in brackets, a time, or two spaces before an English name)
_CN_SPEAKER = re.compile(
    rf"(?m)(?:^|(?<=\] )|(?<=@))(?=[{_START_CLASS}][{_CJK}]{{1,3}}"
    rf"(?:[:：（(]|[ \u3000][0-9]{{1,2}}:[0-9]{{2}}|[ \u3000]{{2}}[A-Z]| |$))"
)
_CN_ALONE = re.compile(
    rf"(?m)(?:(?<=['\"‘“])|(?<=^)|(?<=[,，\t|]))(?=[{_START_CLASS}][{_CJK}]{{1,3}}(?:['\"’”,，\t|]|$))"
)
_CN_SEX = re.compile(r"[男女](?<=[，,（(][男女])(?=[，,、；;）)\s0-9]|$)")
_ANCHOR_AFTER = re.compile(
    rf"(?P<title>{_alt(_STRONG_TITLES)})|(?P<verb>{_alt(_AFTER_VERBS)})|(?P<sex>{_SEX})"
)
_CJK_RUN = re.compile(f"[{_CJK}]+")
# A short run of CJK characters on its own (between punctuation, spaces or line ends).
# (or after a function character: 我叫孙悟空，是李明。)
_BOUND_FUNCTION = "是叫和与跟找问给对让请"
_CN_BOUNDED = re.compile(
    rf"[{_START_CLASS}](?<![{_class_without(0x3400, 0x9FFF, _BOUND_FUNCTION)}].)"
    rf"[{_class_without(0x3400, 0x9FFF, ''.join(_NOT_GIVEN - set('三四五六二')))}]{{1,3}}"
    rf"(?![{_CJK}])"
)
_LEFT_CONTEXT = re.compile(f"(?:{_alt([*_LABELS, *_TITLES])})$")
_RIGHT_CONTEXT = re.compile(_alt([*_TITLES, *_AFTER_VERBS]))
# Structure: a JSON key, a ``key: value`` line, a table header.
_NAME_KEYS = (
    "name|full_name|fullname|full name|customer_name|customer name|contact_name|contact name"
    "|contact|patient_name|patient name|patient|person|employee_name|recipient|receiver"
    "|姓名|名字|联系人|收件人|收货人|寄件人|客户名称|客户姓名|客户|患者姓名|患者|员工姓名|申请人"
    "|负责人|经办人|持卡人|开户名|户主|法定代表人|联系人姓名|签名"
)
_JSON_NAME = re.compile(rf"""["'](?i:{_NAME_KEYS})["']\s*[:=]\s*["']([^"'\n\\]{{2,40}})["']""")
# A table's header cell (checked for a separator on each side in Python).
_HEADER_KEYS = _words(
    "name Name NAME full_name fullname FullName 姓名 联系人 收件人 收货人 客户名称"
    " 客户姓名 患者姓名 员工姓名 申请人 负责人 经办人 持卡人 开户名 户主 联系人姓名"
)
_HEADER = re.compile(_alt(_HEADER_KEYS))
_CELL_EDGE = frozenset(",\t|;\uff0c\uff1b\"' ")
_EN_NAME_VALUE = re.compile(
    r"(?:[A-Z]['’])?[A-Z][A-Za-z'’-]+(?:[ ](?:[A-Z]\.|(?:[A-Z]['’])?[A-Z][A-Za-z'’-]+)){1,2}"
)
_HAN_NAME_VALUE = re.compile(f"[{_CJK}]{{2,4}}")


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
    for word, freq, pos in re.findall(rf"^([{starts}]\S{{1,3}}) (\d+) ([a-z]+)$", jieba, re.M):
        lexicon[word] = (int(freq), pos)
        if pos == "nr" and len(word) == 3 and word[0] in _STRONG_SET and int(freq) <= 200:
            for ch in word[1:]:
                given_counts[ch] = given_counts.get(ch, 0) + 1
    common = {
        w: int(f)
        for w, f, pos in re.findall(r"^(\S\S) (\d{3,}) ([a-z]+)$", jieba, re.M)
        if int(f) >= 100 and pos not in ("ns", "nr", "nrt", "nrfg", "nz", "nt")
    }

    names = _package_dir("names")
    first: dict[str, float] = {}
    for file in ("dist.male.first", "dist.female.first"):
        text = (names / file).read_text(encoding="ascii")
        for name, share in re.findall(r"^([A-Z]+) +([0-9.]+)", text, re.M):
            key = name.lower()
            first[key] = max(first.get(key, 0.0), float(share))
    last_text = (names / "dist.all.last").read_text(encoding="ascii")
    last = {
        n.lower(): int(rank)
        for n, rank in re.findall(r"^([A-Z]+) +[0-9.]+ +[0-9.]+ +(\d+)", last_text, re.M)
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


# ------------------------------------------------------------------ entry point


def find_entities(text: str) -> list[Finding]:
    """PERSON, ADDRESS and US_PHONE findings in ``text``, sorted, without overlaps."""
    if not text:
        return []
    t = _load()
    found: list[Finding] = []
    found += _digit_led(text)
    found += _refined(text, _cn_addresses(text, t))
    found += _latin_names(text, t)
    found += _cn_names(text, t)
    found += _structured_names(text, t)
    return _resolve(found)


_PRIORITY = {"US_PHONE": 3, "ADDRESS": 2, "PERSON": 1}

# An estate's name as people write it right before its building (我家桃源居22号楼, 万科城5幢)
# or right after the house number that ends an address (…天府大道391号星河湾).
_ESTATE_END = "居城苑园湾府庭墅村邸轩阁汇坊寓厦区岸"
_ESTATE_BEFORE = re.compile(rf"[\u4e00-\u9fff]{{2,8}}[{_ESTATE_END}]\Z")
_ESTATE_AFTER = re.compile(
    rf"[\u4e00-\u9fff]{{1,8}}[{_ESTATE_END}](?=$|[\s，。；;,.'\"”’)）\]}}])", re.M
)
_NOT_ESTATE = "我你他她的在是到住家从于与和及把被让给请"
# Not an address: a flat's layout (1室1厅), a metro line (12号线), an office of the police.
_NOT_ADDRESS_AFTER = re.compile(r"[0-9一二三四五六]厅|线")
_ORGANISATION = re.compile(r"公安局|法院|检察院|管理局|委员会|税务局")


def _refined(text: str, found: list[Finding]) -> list[Finding]:
    out = []
    for f in found:
        value = text[f.start : f.end]
        if _NOT_ADDRESS_AFTER.match(text, f.end) or _ORGANISATION.search(value):
            continue
        start, end = f.start, f.end
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
        out.append(f if (start, end) == (f.start, f.end) else Finding(start, end, f.type, f.score))
    return out


def _resolve(found: list[Finding]) -> list[Finding]:
    """One finding per span: the higher type priority, then the higher score, then longer."""
    if not found:
        return []
    ordered = sorted(set(found), key=lambda f: (f.start, -f.end))
    kept: list[Finding] = []
    cluster = [ordered[0]]
    reach = ordered[0].end
    for f in ordered[1:]:
        if f.start < reach:
            cluster.append(f)
            reach = max(reach, f.end)
            continue
        kept += cluster if len(cluster) == 1 else _best_of(cluster)
        cluster, reach = [f], f.end
    kept += cluster if len(cluster) == 1 else _best_of(cluster)
    kept.sort(key=lambda f: (f.start, f.end))
    return kept


def _best_of(cluster: list[Finding]) -> list[Finding]:
    ranked = sorted(cluster, key=lambda f: (-_PRIORITY[f.type], -f.score, f.start - f.end))
    kept: list[Finding] = []
    for f in ranked:
        if all(f.end <= k.start or k.end <= f.start for k in kept):
            kept.append(f)
    return kept


# ------------------------------------------------------------------ US_PHONE


def find_us_phones(text: str) -> list[Finding]:
    """US_PHONE findings only (an identifier: no tables needed)."""
    found = []
    for lead in _DIGIT_LEAD.finditer(text):
        if lead["phone"] is not None:
            m = _US_PHONE.match(text, lead.start())
            f = _us_phone(text, m) if m else None
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
                f = _us_phone(text, m)
                if f:
                    yield f
                    continue
        if lead["street"] is not None and (at == 0 or text[at - 1] not in "#$.,/-"):
            m = _EN_STREET.match(text, at)
            if m:
                f = _en_address(text, m)
                if f:
                    yield f


def _us_phone(text: str, m: re.Match[str]) -> Finding | None:
    start, end = m.start(), m.end()
    area, exchange = text[start : start + 3], text[end - 8 : end - 5]
    if area[1:] == "11" or exchange[1:] == "11":
        return None
    if m["paren"][0] == ")":
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
    score = 0.9 if prefix or m["paren"][0] == ")" else 0.85
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
    if text[end - 1] in "元栋幢座楼" and unit_kinds & {"单元", "栋", "幢", "座", "号楼", "楼"}:
        tail = _ROOM_TAIL.match(text, end)
        if tail:
            end = tail.end()
    score = 0.9 if (admin_levels and (lower or nums)) or label else 0.8
    return Finding(start, end, "ADDRESS", score)


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


# ------------------------------------------------------------------ Latin-script names


def _plain(word: str) -> str:
    """The word as the name lists spell it: lower case, no particle, no accents."""
    word = word.split()[-1].lower()
    if not word.isascii():
        word = word.replace("’", "'")
        word = "".join(
            c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)
        )
    return word


def _latin_names(text: str, t: _Tables) -> list[Finding]:
    found: list[Finding] = []
    first_names, last_names = t.first_names, t.last_names
    for m in _CAPSEQ.finditer(text):
        seq = m.group(0)
        # Quick rejection: a name has a known first name or surname, or a pinyin surname.
        words = seq.split(" ")
        keys = [w.lower() if w.isascii() else _plain(w) for w in words]
        if not (
            any(k in first_names or k in last_names or k in _PINYIN_SURNAMES for k in keys[:-1])
            or keys[-1] in _PINYIN_SURNAMES
        ):
            continue
        start = m.start()
        tokens = [
            (tm.start() + start, tm.end() + start, tm.group(0)) for tm in _TOKEN.finditer(seq)
        ]
        titled = _TITLE_BEFORE.search(text, max(0, start - 12), start) is not None
        if tokens[0][2] in _EN_TITLE_WORDS:
            tokens, titled = tokens[1:], True  # Dr Mary Johnson, Miss Jane Doe
        found += _names_in_sequence(text, tokens, titled, t)
    return found


def _names_in_sequence(
    text: str, tokens: list[tuple[int, int, str]], titled: bool, t: _Tables
) -> list[Finding]:
    n = len(tokens)
    if n < 2:
        return []
    keys = [_plain(w) for _s, _e, w in tokens]
    stops = [len(k) > 1 and k in _EN_STOP for k in keys]
    # A stop word after a candidate makes the whole sequence an organisation or a place
    # (George Washington University, Jordan River): nothing before it is a name.
    last_stop = max((i for i in range(n) if stops[i]), default=-1)
    out: list[Finding] = []
    i = last_stop + 1
    while i < n - 1:
        best: tuple[float, int, Finding] | None = None
        for size in (3, 2):
            if i + size > n:
                continue
            f = _judge_latin(text, tokens, keys, i, size, titled and i == 0, t)
            if f and (best is None or f.score > best[0]):
                best = (f.score, size, f)
        if best:
            out.append(best[2])
            i += best[1]
        else:
            i += 1
    return out


def _judge_latin(
    text: str,
    tokens: list[tuple[int, int, str]],
    keys: list[str],
    i: int,
    size: int,
    titled: bool,
    t: _Tables,
) -> Finding | None:
    first, last = tokens[i][2], tokens[i + size - 1][2]
    if first.endswith(".") or last.endswith(".") or first[0].islower():
        return None
    f_key, l_key = keys[i], keys[i + size - 1]
    if f"{f_key} {l_key}" in _PINYIN_NOT_NAMES:
        return None
    start, end = tokens[i][0], tokens[i + size - 1][1]
    context: bool | None = True if titled else None  # looked at only when it matters
    after = _EN_CONTEXT_AFTER.match(text, end) is not None
    # Pinyin: surname + given name (Zhang Wei, WANG Fang), or given + surname (Wei Zhang).
    if size == 2 and (f_key in _PINYIN_SURNAMES or l_key in _PINYIN_SURNAMES):
        if context is None:
            context = _en_context(text, start)
        pinyin = _judge_pinyin(first, last, context or after)
        if pinyin is not None:
            return Finding(start, end, "PERSON", pinyin)
    if size == 3:
        middle = tokens[i + 1][2]
        m_key = keys[i + 1]
        m_rank = t.last_names.get(m_key, 99999)
        l_rank = t.last_names.get(l_key, 99999)
        if not (
            middle.endswith(".") or m_key in t.first_names or (m_rank <= 5000 and l_rank <= 20000)
        ):
            return None
    f_key = f_key.split("-")[0]
    share = t.first_names.get(f_key, 0.0)
    rank = t.last_names.get(l_key.split("-")[-1])
    if not share and rank is None:
        return None
    score = 0.0
    if share:
        score += 0.35 if f_key not in _EN_AMBIGUOUS_FIRST else 0.15
        if share < 0.003:
            score -= 0.1
    if rank is not None:
        score += 0.45 if rank <= 1000 else 0.35 if rank <= 10000 else 0.2
    if size == 3:
        score += 0.1
    if after:
        score += 0.2
    if titled:
        score += 0.5
    else:
        if context is None:
            context = score < 0.6 or first.isupper() or _en_context(text, start)
            context = context and _en_context(text, start)
        if context:
            score += 0.35
        elif first.isupper() and len(first) > 1:
            score -= 0.2  # A HEADLINE IN CAPITALS
    if score < 0.6:
        return None
    return Finding(start, end, "PERSON", round(min(0.95, 0.45 + score / 2), 2))


def _judge_pinyin(first: str, last: str, context: bool) -> float | None:
    a, b = first.lower(), last.lower()
    if f"{a} {b}" in _PINYIN_NOT_NAMES:
        return None
    for surname, given, sur_word in ((a, b, first), (b, a, last)):
        if surname not in _PINYIN_SURNAMES or not _GIVEN_PINYIN.fullmatch(given):
            continue
        given_word = last if sur_word is first else first
        if not (
            given_word[0].isupper()
            and (given_word[1:].islower() or given_word.isupper() or "-" in given_word)
        ):
            continue
        if sur_word is last and not context and a in _PINYIN_SURNAMES:
            continue  # Li Wang: read as surname first
        two_syllables = len(given) > 3 and not _single_syllable(given)
        if (surname in _PINYIN_AMBIGUOUS or given in _PINYIN_AMBIGUOUS) and not (
            context or two_syllables or sur_word.isupper()
        ):
            continue
        if sur_word is last and not (context or sur_word.isupper()) and given in _PINYIN_SURNAMES:
            continue
        return 0.9 if context else 0.8
    return None


def _single_syllable(word: str) -> bool:
    return word in _SYLLABLE_SET


_SYLLABLE_SET = frozenset(_SYLLABLES)


# ------------------------------------------------------------------ Chinese names


def _cn_names(text: str, t: _Tables) -> list[Finding]:
    found: list[Finding] = []
    for m in _CN_RIGHT.finditer(text):
        _name_before(text, m.start(), t, found)
        after = m.end()
        if text[after : after + 1] in _START_SET and m.group(0) in _TITLE_SET:
            f = _after_label(text, after, m.group(0), m.start(), t)  # 护士长刘红梅
            if f:
                found.append(f)
    for m in _CN_LEFT.finditer(text):
        f = _after_label(text, m.end(), m["label"], m.start(), t)
        if f:
            found.append(f)
    for m in _CN_ROLE_LABEL.finditer(text):
        f = _after_label(text, m.end(), "姓名", m.start(), t)
        if f:
            found.append(f)
    for m in (*_CN_SPEAKER.finditer(text), *_CN_ALONE.finditer(text)):
        f = _after_label(text, m.end(), "姓名", m.start(), t)
        if f and _right_ok(text, f.end) and not _a_word(text[f.start : f.end], t):
            found.append(f)
    for m in _CN_SEX.finditer(text):
        _name_before(text, m.start() - 1, t, found)  # ，男 / （女
    for m in _CN_BOUNDED.finditer(text):
        f = _bounded(text, m.start(), m.end(), t)
        if f:
            found.append(f)
    return found


def _name_before(text: str, end: int, t: _Tables, found: list[Finding]) -> None:
    f = None
    if _surname_near(text, end):  # cheap test first: a surname two to four characters back
        f = _before_anchor(text, end, t)
    if f is None:
        # A time or a function word between the name and the verb (张伟明天出院).
        for length in (2, 1):
            if text[end - length : end] in _BETWEEN and _surname_near(text, end - length):
                f = _before_anchor(text, end - length, t, end)
                if f:
                    break
    if f:
        found.append(f)


def _surname_near(text: str, end: int) -> bool:
    s = _START_SET
    return (
        text[end - 2 : end - 1] in s or text[end - 3 : end - 2] in s or text[end - 4 : end - 3] in s
    )


def _surname_len(cand: str) -> int:
    """1 or 2 (a compound surname), or 0 when ``cand`` does not start with a surname."""
    if cand[:2] in _COMPOUND_SET and len(cand) >= 3:
        return 2
    return 1 if cand[:1] in _SURNAME_SET else 0


_GIVEN_CACHE: dict[str, float] = {}


def _given_ok(given: str, t: _Tables) -> float:
    """How plausible ``given`` is as a given name: 0 (never) to 1."""
    score = _GIVEN_CACHE.get(given)
    if score is None:
        if len(_GIVEN_CACHE) > 50_000:
            _GIVEN_CACHE.clear()
        score = _GIVEN_CACHE[given] = _given_score(given, t)
    return score


def _given_score(given: str, t: _Tables) -> float:
    if not given or any(c in _NOT_GIVEN for c in given):
        if given in ("三", "四", "五", "六", "二"):
            return 0.6  # 张三, 李四, 王五
        if not given or not (given[0] in "一小大" and len(given) == 2):
            return 0.0
    if given in _TITLE_SET or given[:2] in _TITLE_SET:
        return 0.0
    score = 1.0
    for c in given:
        if c in _GIVEN:
            continue
        n = t.given_counts.get(c, 0)
        score *= 0.8 if n >= 15 else 0.55 if n >= 5 else 0.25
    return score


def _surname_prior(cand: str, slen: int) -> float:
    if slen == 2:
        return 0.8 if cand[:2] != "东方" else 0.4
    c = cand[0]
    return 1.0 if c in _STRONG_SET else 0.55


def _word_penalty(text: str, start: int, cand: str, t: _Tables) -> float:
    """How much the lexicon says ``cand`` (at ``start``) is an ordinary word, 0 to 1."""
    entry = t.lexicon.get(cand)
    if entry is not None:
        freq, pos = entry
        if pos.startswith("nr"):
            return 0.0 if freq < 300 else 0.3
        # jieba's rarest entries are often names it tagged otherwise (夏侯惇 3 ns).
        return 1.0 if freq >= 50 else 0.6 if freq >= 10 else 0.3
    # A longer word starting here (程序员, 周末去 is 周末 + 去, 丁字路口).
    for length in (4, 3):
        if len(cand) < length:
            word = text[start : start + length]
            e = t.lexicon.get(word)
            if e is not None and not e[1].startswith("nr") and e[0] >= 20:
                return 1.0
    # Its first two characters are a frequent word (许多人, 马上就).
    if len(cand) == 3:
        e = t.lexicon.get(cand[:2])
        if e is not None and not e[1].startswith("nr") and e[0] >= 3000:
            return 0.7
    return 0.0


def _left_ok(text: str, start: int) -> bool:
    """Whether a name may begin at ``start``: after punctuation, a non-CJK character, the
    text's start, a function character or a label or title."""
    if start == 0:
        return True
    c = text[start - 1]
    if not ("\u3400" <= c <= "\u9fff"):
        return True
    if c in _LEFT_FUNCTION:
        return True
    return _LEFT_CONTEXT.search(text, max(0, start - 6), start) is not None


def _right_ok(text: str, end: int) -> bool:
    if end >= len(text):
        return True
    c = text[end]
    if not ("\u3400" <= c <= "\u9fff"):
        return True
    if c in _RIGHT_FUNCTION:
        return True
    return _RIGHT_CONTEXT.match(text, end) is not None


_BETWEEN = frozenset(
    _words(
        "今天 明天 昨天 后天 前天 今日 明日 昨日 上午 下午 晚上 早上 中午 刚才 刚刚 已经 曾经"
        " 一直 也 都 又 还 就 再 已 曾 将 才 刚 均 亦 当场 本人 亲自 再次 多次 曾于 于"
    )
)
_LEFT_FUNCTION = frozenset("的和与跟同对给叫让被把找问向请是为由及或称位名致令派")
_RIGHT_FUNCTION = frozenset(
    "的说和与跟及等在是于今昨明前后曾已也都就又还再才刚将要会因从向到对给被把称"
)


def _before_anchor(text: str, end: int, t: _Tables, anchor: int | None = None) -> Finding | None:
    a = _ANCHOR_AFTER.match(text, end if anchor is None else anchor)
    if a is None:
        return None
    if a["title"]:
        strength = 0.5
    elif a["sex"]:
        strength = 0.45
    elif a["verb"] in ("说", "称"):
        strength = 0.25
    else:
        strength = 0.35
    best: tuple[float, int] | None = None
    compound_at = -2  # where a compound surname begins (夏侯惇: not 侯惇)
    for length in (4, 3, 2):
        start = end - length
        if start < 0 or start == compound_at + 1:
            continue
        cand = text[start:end]
        if not _CJK_RUN.fullmatch(cand):
            continue
        slen = _surname_len(cand)
        if not slen or len(cand) - slen > 2 or (length == 4 and slen != 2):
            continue
        given = cand[slen:]
        g = _given_ok(given, t)
        if not g:
            continue
        if slen == 2:
            compound_at = start
        penalty = _word_penalty(text, start, cand, t)
        if penalty >= 1.0 and not (a["title"] and (t.lexicon.get(cand) or (0, ""))[0] < 2000):
            continue
        score = strength + 0.25 * _surname_prior(cand, slen) + 0.2 * g - 0.4 * penalty
        if _left_ok(text, start):
            score += 0.15
        elif length == 2 and text[start - 1] in _SURNAME_SET:
            score -= 0.05
        if best is None or score > best[0] + 0.001:
            best = (score, start)
    if best is None or best[0] < 0.6:
        return None
    return Finding(best[1], end, "PERSON", round(min(0.97, best[0]), 2))


def _a_word(cand: str, t: _Tables) -> bool:
    """A dictionary word that is no name (高兴; 谢谢, which jieba tags nr but is frequent)."""
    entry = t.lexicon.get(cand)
    if entry is not None and (not entry[1].startswith("nr") or entry[0] > _FREQUENT):
        return True
    return cand in t.common


_FREQUENT = 300  # a name standing alone is rarely this frequent in jieba's dictionary


_ROLE_NOUNS = ("管家", "骑手", "快递员", "配送员", "司机", "保安", "保洁", "客服", "护工", "前台")


def _after_label(text: str, start: int, label: str, label_start: int, t: _Tables) -> Finding | None:
    if text.startswith(_ROLE_NOUNS, start):
        return None  # 联系人：管家沈辉敏: the name comes after the role
    strong = label not in _WEAK_LABELS and label not in _TITLE_SET
    strong_start = text[start] in _STRONG_SET or text[start : start + 2] in _COMPOUND_SET
    if label in _TITLE_SET and (text[start] in _LEFT_FUNCTION or not strong_start):
        return None  # 张经理和王总: a title, then a conjunction
    if label in _WEAK_LABELS and label_start > 0:
        # 致 (to) and 客户 are evidence at a line's or a clause's start only.
        before = text[label_start - 1]
        if _CJK_RE.match(before) and before not in "的":
            return None
    best: tuple[float, int] | None = None
    for length in (4, 3, 2):
        cand = text[start : start + length]
        if len(cand) < length or not _CJK_RE.fullmatch(cand[-1]):
            continue
        if not all(_CJK_RE.match(c) for c in cand):
            continue
        slen = _surname_len(cand)
        if not slen or len(cand) - slen > 2 or (length == 4 and slen != 2):
            continue
        g = _given_ok(cand[slen:], t)
        if not g:
            continue
        penalty = _word_penalty(text, start, cand, t)
        score = (0.45 if strong else 0.3) + 0.2 * _surname_prior(cand, slen) + 0.2 * g
        score -= 0.5 * penalty
        end = start + length
        if _right_ok(text, end):
            score += 0.2
        elif len(cand) - slen == 2 and text[end - 1 : end + 1] in t.common:
            score -= 0.2  # 王芳今日: the third character starts a word
        if best is None or score > best[0] + 0.001:
            best = (score, end)
    if best is None or best[0] < 0.6:
        return None
    return Finding(start, best[1], "PERSON", round(min(0.95, best[0]), 2))


def _bounded(text: str, start: int, end: int, t: _Tables) -> Finding | None:
    cand = text[start:end]
    slen = _surname_len(cand)
    if not slen:
        return None
    given = cand[slen:]
    if not given or len(given) > 2:
        return None
    if (start and text[start - 1] in "·•") or (end < len(text) and text[end] in "·•"):
        return None  # a transliterated foreign name's part
    g = _given_ok(given, t)
    if g < 0.5:
        return None
    entry = t.lexicon.get(cand)
    if entry is not None and not (entry[1] == "nr" and entry[0] < 300):
        return None
    if _word_penalty(text, start, cand, t) > 0:
        return None
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    listed = before in "、" or after in "、"
    if before and before in _BOUND_FUNCTION:
        # After 是/叫/和: only a clear name (a top surname, name characters, no word).
        if slen != 1 or cand[0] not in _STRONG_SET or not all(c in _GIVEN for c in given):
            return None
        if given in t.common or cand in t.common or after in "的":
            return None
        return Finding(start, end, "PERSON", 0.65)
    prior = _surname_prior(cand, slen)
    if slen == 1 and cand[0] not in _STRONG_SET and not listed:
        return None
    if len(given) == 1:
        # Two characters alone are a name only in a list of names (张伟、王芳).
        if not listed or prior < 1.0 or given not in _GIVEN:
            return None
        if cand in t.common:
            return None
        return Finding(start, end, "PERSON", 0.7)
    if g < 0.8 and not (entry and entry[1] == "nr"):
        return None
    if before in '“"《「『【' or after in '”"》」』】':
        return None  # a quoted word or a title
    if given in t.common and not listed:
        return None  # 国庆, 建设: a word after a surname character is a phrase as often
    return Finding(start, end, "PERSON", 0.75 if listed else 0.65)


# ------------------------------------------------------------------ structured names


def _structured_names(text: str, t: _Tables) -> list[Finding]:
    found: list[Finding] = []
    if '"' in text or "'" in text:
        for m in _JSON_NAME.finditer(text):
            f = _name_value(m.group(1), m.start(1), t)
            if f:
                found.append(f)
    for m in _HEADER.finditer(text):
        start, end = m.start(), m.end()
        before = text[start - 1] if start else "\n"
        after = text[end] if end < len(text) else "\n"
        if (before in _CELL_EDGE or before == "\n") and (after in _CELL_EDGE or after in "\r\n"):
            found += _table_column(text, m, t)
    return found


def _name_value(value: str, at: int, t: _Tables) -> Finding | None:
    """A field's whole value (trimmed) when it has the shape of a name."""
    stripped = value.strip(" \t\"'")
    if not stripped:
        return None
    at += value.index(stripped)
    if _HAN_NAME_VALUE.fullmatch(stripped):
        slen = _surname_len(stripped)
        if not slen or not 1 <= len(stripped) - slen <= 2:
            return None
        if not _given_ok(stripped[slen:], t):
            return None
        if _word_penalty(stripped, 0, stripped, t) >= 0.6:
            return None  # {"name": "高级版"}, a word
        return Finding(at, at + len(stripped), "PERSON", 0.9)
    if _EN_NAME_VALUE.fullmatch(stripped):
        keys = [_plain(w) for w in stripped.split()]
        if any(k in _EN_STOP for k in keys):
            return None
        # A name field holds project and product names too: a known first name, or a
        # pinyin name, or a census surname last.
        if not (
            keys[0] in t.first_names
            or keys[0] in _PINYIN_SURNAMES
            or keys[-1] in _PINYIN_SURNAMES
            or t.last_names.get(keys[-1], 99999) <= 20000
        ):
            return None
        return Finding(at, at + len(stripped), "PERSON", 0.85)
    return None


def _table_column(text: str, m: re.Match[str], t: _Tables) -> list[Finding]:
    line_start = text.rfind("\n", 0, m.start() + 1) + 1
    line_end = text.find("\n", m.end())
    if line_end < 0:
        line_end = len(text)
    header = text[line_start:line_end].rstrip("\r")
    sep = next((s for s in ("\t", "|", ",", "，", ";", "；") if s in header), None)
    if sep is None:
        return []
    names = [h.strip(" \t\"'") for h in header.split(sep)]
    key_at = m.group(0)
    try:
        column = names.index(key_at)
    except ValueError:
        return []
    found: list[Finding] = []
    pos = line_end + 1
    rows = 0
    while pos < len(text) and rows < 10_000:
        nl = text.find("\n", pos)
        stop = len(text) if nl < 0 else nl
        line = text[pos:stop].rstrip("\r")
        if not line.strip() or line.count(sep) != header.count(sep):
            break
        cells = line.split(sep)
        offset = pos + sum(len(c) + len(sep) for c in cells[:column])
        if set(cells[column].strip()) <= set("-:| "):
            pos = stop + 1
            continue  # a Markdown table's rule
        f = _name_value(cells[column], offset, t)
        if f:
            found.append(f)
        rows += 1
        pos = stop + 1
    return found


def spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` of each finding (for tests and tools)."""
    return [(f.start, f.end, f.type) for f in find_entities(text)]


def preload() -> None:
    """Load the tables now (a server calls this at start, so no request waits for it)."""
    _load()


__all__ = ["ENTITY_TYPES", "find_entities", "preload", "spans"]
