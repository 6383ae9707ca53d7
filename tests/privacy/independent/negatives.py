"""Hard negatives: texts with no personal data that a naive scanner would flag."""

from __future__ import annotations

import random
import uuid
from hashlib import md5, sha1, sha256

from . import validators as v

SURNAME_WORD_SENTENCES = (
    "周末我们去江湖边露营，大家都很高兴。",
    "黄金价格今日上涨，石油期货小幅回落。",
    "马上就要开会了，请把方法论文档再过一遍。",
    "王国的故事讲到第三章，张开的地图上画满了河流。",
    "周报里写了三个方法：先分析，再试点，最后推广。",
    "高兴地告诉大家，我们的石油化工项目通过验收。",
    "江湖传说不可全信，马上核实一下数据来源。",
    "黄金周期间景区人流量创新高。",
    "陈列柜里放着一把古代的钥匙。",
    "李子和杨梅都熟了，周末去采摘吧。",
    "刘海剪短了一点，看起来更精神。",
    "杨柳依依，江南三月最适合散步。",
    "吴语是江南地区的一种方言。",
    "孙子兵法里讲究知己知彼。",
    "胡说八道的谣言请不要转发。",
    "朱红色的大门在阳光下格外醒目。",
    "林业部门发布了新的防火指南。",
    "何必为这点小事生气呢？",
    "罗盘指向正北方，我们继续前进。",
    "宋体和黑体是最常用的中文字体。",
    "郑重声明：本公司从未授权任何第三方代收款项。",
    "谢谢大家的支持，下周见。",
    "唐朝诗歌是中国文学的高峰之一。",
    "于是我们决定改用新的方案。",
    "董事会审议通过了年度预算。",
    "程序员节快乐！今晚加鸡腿。",
    "许多用户反馈夜间模式太暗。",
    "曾经有一份真诚的需求摆在我面前。",
    "苏打水和柠檬茶哪个更解渴？",
    "丁香花开满了校园的小路。",
    "叶子黄了，秋天真的来了。",
    "余额不足，请及时充值。",
    "杜鹃花在山坡上开得正艳。",
    "夏天的雷阵雨来得快去得也快。",
    "钟表店的师傅修好了那块老怀表。",
    "汪洋大海中的一叶扁舟。",
    "田野里的麦子已经金黄。",
    "任务已分配，请在截止日期前完成。",
    "范围评审会改到下午。",
    "方向盘有点偏，需要做四轮定位。",
    "石头剪刀布，三局两胜。",
    "熊猫基地今天闭馆维护。",
    "金融科技峰会将于下月举行。",
    "陆地面积约占地球表面积的百分之二十九。",
    "孔雀开屏是为了求偶。",
    "白天气温较高，注意防暑。",
    "康复训练每天坚持半小时。",
    "毛巾要定期更换和消毒。",
    "江南水乡的小桥流水很有韵味。",
    "史诗级更新上线了，快去体验。",
    "顾客就是上帝，服务要到位。",
    "龙头企业带动了整个产业链。",
    "万一下雨，活动改到室内。",
    "段落之间空一行，排版更清晰。",
    "雷达显示前方有强对流天气。",
    "钱包丢了，幸好里面没有证件。",
    "汤圆要煮到浮起来再等一分钟。",
    "黎明时分，城市还在沉睡。",
    "常见问题请先查看帮助中心。",
    "武术表演赢得了阵阵掌声。",
    "乔迁之喜，欢迎大家来做客。",
    "贺卡已经寄出，请注意查收。",
    "文件已归档，编号见系统。",
    "高铁二等座票价下调。",
    "安全生产月活动正式启动。",
    "温度传感器读数异常，已派人检修。",
    "包装盒可回收，请分类投放。",
    "左右两侧的按钮功能相同。",
    "紫荆花开了，满城飘香。",
    "明天天气晴转多云。",
    "金色的麦浪一望无际。",
    "马克笔没水了，换一支。",
    "周一例会改为线上进行。",
    "高速公路节假日免费通行。",
    "入海口的湿地很壮观。",
    "张贴公告前请先经过审批。",
    "王者归来，新版本今晚发布。",
    "江河湖海都需要保护。",
    "石油输出国组织决定减产。",
    "方法调用失败，请检查参数。",
)

CAPITALISED = (
    "The meeting has been moved to Monday at 10am.",
    "We rewrote the ingestion service in Python and it is twice as fast.",
    "Apple Inc. reported record quarterly revenue.",
    "According to the New York Times, inflation cooled in May.",
    "Please join via Microsoft Teams; the link is in the calendar invite.",
    "Our staging cluster runs on Amazon Web Services in Frankfurt.",
    "Bank of America and Goldman Sachs raised their forecasts.",
    "The Golden Gate Bridge was closed for maintenance on Sunday.",
    "Upgrade to Windows Server 2022 before the end of support.",
    "Rust and Go are both good fits for the new proxy.",
    "Kubernetes rolled out the new Deployment without downtime.",
    "Black Friday traffic peaked at noon Eastern Time.",
    "Happy Thanksgiving from the whole Support Team!",
    "Visual Studio Code crashed after the last update.",
    "Google Chrome blocked the download as potentially harmful.",
    "The Wall Street Journal covered our Series B round.",
    "General Electric and Siemens bid for the turbine contract.",
    "Read the Terms of Service and the Privacy Policy carefully.",
    "Tesla Model Y deliveries resumed in Shanghai.",
    "The Federal Reserve held rates steady in June.",
    "Spring Festival Gala ratings were higher than last year.",
    "The Python Software Foundation announced PyCon dates.",
    "Customer Success will follow up by Friday.",
    "New York Stock Exchange opens at 9:30 Eastern.",
    "Los Angeles International Airport reported delays.",
    "Hello World is the first program in most tutorials.",
    "Yellow Pages listings were discontinued in many cities.",
    "Open the Control Panel and choose Network Settings.",
    "Amazon Prime Day starts next Tuesday.",
    "Oracle Database 19c reaches extended support next year.",
)

PLACES = (
    "北京时间 {d} {t}，比赛正式开始。",
    "杭州亚运会共设 40 个大项。",
    "上海证券交易所今日收盘，沪指上涨 0.8%。",
    "深圳证券交易所发布了新的交易规则。",
    "中国银行上海分行推出了新的理财产品。",
    "北京字节跳动科技有限公司发布了年度报告。",
    "广州地铁 3 号线早高峰临时限流。",
    "成都大运会志愿者招募开始了。",
    "武汉大学的樱花节吸引了大量游客。",
    "西湖龙井新茶上市。",
    "重庆火锅和四川火锅有什么区别？",
    "天津港集装箱吞吐量创新高。",
    "南京长江大桥完成了维修加固。",
    "上海迪士尼乐园周末人很多。",
    "深圳湾公园的日落很美。",
    "苏州园林是世界文化遗产。",
    "青岛啤酒节将于八月开幕。",
    "哈尔滨冰雪大世界今天开园。",
    "浙江大学和清华大学联合发布研究成果。",
    "厦门鼓浪屿实行预约登岛。",
    "上海市浦东新区人民政府发布通知。",
    "北京大学第三医院开通了线上问诊。",
    "长沙黄花国际机场航班正常。",
    "西安兵马俑博物馆延长开放时间。",
    "广东省气象台发布暴雨黄色预警。",
    "Beijing Capital International Airport expanded Terminal 3.",
    "The Shanghai Composite Index closed higher.",
    "Hong Kong Disneyland reopened after the typhoon.",
)

VERSION_FRAMES = (
    "app_version={a}.{b}.{c}.{d}",
    "固件版本 {a}.{b}.{c}.{d}，请升级到最新。",
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{a}.0.0.0 Safari/537.36",
    "当前版本号：{a}.{b}.{c}.{d}",
    "Build {a}.{b}.{c}.{d} is now available on the release channel.",
    "升级包 v{a}.{b}.{c}.{d} 已推送到所有终端。",
    "version: {a}.{b}.{c}.{d}",
    '{{"app_version": "{a}.{b}.{c}.{d}", "os": "Android 14"}}',
    "软件版本 {a}.{b}.{c}.{d} 修复了若干已知问题。",
    "Edg/{a}.0.{c}.{d} reported a crash on startup.",
)

SECTION_FRAMES = (
    "根据第{a}.{b}.{c}.{d}条的规定，本合同自签署之日起生效。",
    "See section {a}.{b}.{c}.{d} for the retry policy.",
    "详见第 {a}.{b}.{c}.{d} 节。",
    "§ {a}.{b}.{c}.{d} covers data retention.",
    "Section {a}.{b}.{c}.{d}: Incident response.",
)

ASSET_FRAMES = (
    "logo@2x.png",
    "icon@3x.png",
    "banner@2x.jpg",
    "avatar@2x.webp",
    "sprite@1.5x.png",
    "hero@2x.svg",
    '<img src="/static/img/logo@2x.png" alt="logo">',
    "background-image: url(bg@2x.jpg);",
)

KEYWORD_FRAMES = (
    "orderNo={n16}",
    "订单号：{n16}，预计明天送达。",
    "订单号 {uscc18}，请勿重复支付。",
    "SKU: {n16}",
    "商品条码 {n13}",
    "条码：{n16}",
    "ISBN {isbn}",
    "ISBN-13: {isbn_h}",
    "快递单号 {n16}，已到达分拣中心。",
    "运单号：{n16}",
    "Tracking number: {n16}",
    "交易流水号：{n19}",
    "发票号码：{n16}",
    '{{"orderNo": "{n18}", "status": "SHIPPED"}}',
    "您的订单号 {n11}，请保存好凭证。",
)

SLICE_FRAMES = (
    "设备序列号 {pre}-{mobile}-{post}",
    "批次号 {pre} {card4} {post}",
    "合同编号 HT-{pre}-{id}-{post}",
    "参考编号 {pre}-{card}-{post}",
    "库位码 {pre} {mobile} {post}",
)

TIME_FRAMES = (
    "created_at=2024-{mo}-{dd}T{hh}:{mi}:{ss}.123Z",
    "日志时间戳 {ms}",
    "timestamp: {ms}",
    "请求时间 {yyyy}{mo}{dd}{hh}{mi}{ss}",
    "Last modified: {dd}/{mo}/2024 {hh}:{mi}:{ss}",
    "耗时 {hh}:{mi}:{ss}.{micro}",
    "epoch={sec}",
    "有效期 2024.{mo}.{dd}-2034.{mo}.{dd}",
)

AMOUNT_FRAMES = (
    "合计：¥{a},{b}.{c}",
    "Total due: USD {a},{b}.{c}",
    "本月账单金额 {a}{b}.{c} 元",
    "退款 {a},{b}.{c} 元已原路返回。",
    "Revenue grew to $ {a},{b},{b}.{c} in Q2.",
    "预算 {a}{b}{b} 元，实际支出 {a}{b} 元。",
)

HASH_FRAMES = (
    "sha256: {sha256}",
    "commit {sha1}",
    "md5={md5}",
    "request_id={uuid}",
    "trace-id: {uuid}",
    'ETag: "{md5}"',
    "下载校验值 {sha256}",
    "session={uuid}; Path=/; HttpOnly",
)


def _ip_safe(rng: random.Random) -> dict[str, int]:
    return {
        "a": rng.randrange(1, 200),
        "b": rng.randrange(0, 40),
        "c": rng.randrange(0, 40),
        "d": rng.randrange(0, 200),
    }


def _luhn(rng: random.Random, n: int) -> str:
    return v.luhn_complete(
        rng.choice("23456789") + "".join(rng.choice("0123456789") for _ in range(n - 2))
    )


def _uscc18(rng: random.Random) -> str:
    while True:
        s = rng.choice("123456789") + "".join(rng.choice("0123456789") for _ in range(16))
        c = v.uscc_check_char(s)
        if c.isdigit() and not v.is_resident_id(s + c):
            return s + c


def _isbn(rng: random.Random) -> str:
    """A valid ISBN-13 that is also Luhn-valid."""
    while True:
        body = "978" + rng.choice("7") + "".join(rng.choice("0123456789") for _ in range(8))
        check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
        s = body + str(check)
        if v.luhn_ok(s):
            return s


def _digits(rng: random.Random, n: int) -> str:
    return rng.choice("23456789") + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _slice_values(rng: random.Random) -> dict[str, str]:
    mobile = rng.choice(["138", "139", "186", "150"]) + "".join(
        rng.choice("0123456789") for _ in range(8)
    )
    card = _luhn(rng, 16)
    body = rng.choice(["110105", "310115", "440305"]) + "19880214" + _digits(rng, 3)
    return {
        "pre": _digits(rng, rng.choice([2, 4])),
        "post": _digits(rng, rng.choice([2, 3, 4])),
        "mobile": mobile,
        "card": card,
        "card4": " ".join(card[i : i + 4] for i in range(0, 16, 4)),
        "id": body + v.id_check_char(body),
    }


def hard_negatives(seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    out += SURNAME_WORD_SENTENCES
    out += CAPITALISED
    out += ASSET_FRAMES
    for frame in PLACES:
        out.append(
            frame.format(
                d=f"2024年{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日",
                t=f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
            )
        )
    for _ in range(3):
        for frame in VERSION_FRAMES + SECTION_FRAMES:
            out.append(frame.format(**_ip_safe(rng)))
    for _ in range(4):
        for frame in KEYWORD_FRAMES:
            isbn = _isbn(rng)
            out.append(
                frame.format(
                    n16=_luhn(rng, 16),
                    n13=_luhn(rng, 13),
                    n18=_uscc18(rng),
                    n19=_luhn(rng, 19),
                    n11=_digits(rng, 11),
                    uscc18=_uscc18(rng),
                    isbn=isbn,
                    isbn_h=f"{isbn[:3]}-{isbn[3]}-{isbn[4:7]}-{isbn[7:12]}-{isbn[12]}",
                )
            )
    for _ in range(4):
        for frame in SLICE_FRAMES:
            out.append(frame.format(**_slice_values(rng)))
    for _ in range(3):
        for frame in TIME_FRAMES:
            out.append(
                frame.format(
                    mo=f"{rng.randrange(1, 13):02d}",
                    dd=f"{rng.randrange(1, 29):02d}",
                    hh=f"{rng.randrange(24):02d}",
                    mi=f"{rng.randrange(60):02d}",
                    ss=f"{rng.randrange(60):02d}",
                    micro=f"{rng.randrange(10**6):06d}",
                    ms=str(rng.randrange(1_600_000_000_000, 1_800_000_000_000)),
                    yyyy="2024",
                    sec=str(rng.randrange(1_600_000_000, 1_800_000_000)),
                )
            )
        for frame in AMOUNT_FRAMES:
            out.append(
                frame.format(
                    a=rng.randrange(1, 999),
                    b=f"{rng.randrange(1000):03d}",
                    c=f"{rng.randrange(100):02d}",
                )
            )
        for frame in HASH_FRAMES:
            blob = str(rng.random()).encode()
            out.append(
                frame.format(
                    sha256=sha256(blob).hexdigest(),
                    sha1=sha1(blob, usedforsecurity=False).hexdigest(),
                    md5=md5(blob, usedforsecurity=False).hexdigest(),
                    uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
                )
            )
    seen: set[str] = set()
    unique = []
    for text in out:
        if text not in seen:
            seen.add(text)
            unique.append(text)
    return unique
