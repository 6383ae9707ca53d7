"""Document templates. Each takes a Gen and returns parts: plain text, or (value, TYPE).

Plain text in a template never carries personal data of the labelled types: order
numbers, timestamps, amounts, versions and hashes are there on purpose, as the
negatives that real documents put next to the positives.
"""

from __future__ import annotations

from collections.abc import Callable

from . import validators as v
from .values import Gen, Part

TEMPLATES: dict[str, Callable[[Gen], list[Part]]] = {}


def template(name: str):
    def register(fn: Callable[[Gen], list[Part]]):
        assert name not in TEMPLATES, name
        TEMPLATES[name] = fn
        return fn

    return register


def title_zh(g: Gen) -> str:
    return g.pick(["", "", "先生", "女士"])


def sex(g: Gen) -> str:
    return g.pick(["男", "女"])


ISSUES_ZH = (
    "宽带无法连接，已重启光猫两次仍然不行。",
    "收到的商品外包装破损，要求换货。",
    "APP 登录时一直提示验证码错误。",
    "上个月话费多扣了 30 元，请核实。",
    "快递显示已签收但本人没有收到。",
    "会员自动续费未经同意，申请退款。",
    "发票抬头开错了，需要重开。",
    "空调安装师傅迟到三个小时。",
)
DIAG_ZH = (
    "2型糖尿病",
    "社区获得性肺炎",
    "急性阑尾炎术后",
    "高血压病3级（极高危）",
    "腰椎间盘突出症",
    "冠状动脉粥样硬化性心脏病",
)
BANKS_ZH = ("中国工商银行", "中国建设银行", "招商银行", "中国农业银行", "交通银行", "中国银行")
HOSPITALS = ("市第一人民医院", "省人民医院", "中心医院", "协和医院", "附属第二医院")
UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36"
)


def luhn_number(g: Gen, n: int) -> str:
    return v.luhn_complete(g.digits(n - 1, "23456789"))


def uscc_like_order(g: Gen) -> str:
    """An 18-digit order number whose last digit passes the GB 32100 check."""
    while True:
        s = g.digits(17, "23456789")
        c = v.uscc_check_char(s)
        if c.isdigit() and not v.is_resident_id(s + c):
            return s + c


# --- Chinese customer tickets ------------------------------------------------------------


@template("zh_ticket_basic")
def _zh_ticket_basic(g: Gen) -> list[Part]:
    cust = g.person_zh()
    return [
        f"【客服工单】工单号：GD{g.order_no(10)}\n提交时间：{g.ts()}\n客户姓名：",
        cust,
        title_zh(g),
        "\n联系电话：",
        g.mobile(),
        "\n问题描述：",
        g.pick(ISSUES_ZH),
        "\n处理人：",
        g.person_zh(),
        "\n状态：",
        g.pick(["待处理", "处理中", "已解决"]),
    ]


@template("zh_ticket_refund")
def _zh_ticket_refund(g: Gen) -> list[Part]:
    return [
        "客户",
        g.person_zh(),
        g.pick(["女士", "先生"]),
        f"申请退款，订单号 {g.order_no(12)}，退款金额 ¥{g.amount()}，退回银行卡 ",
        g.card(),
        f"（{g.pick(BANKS_ZH)}）。预留手机 ",
        g.mobile(),
        "。请财务在 3 个工作日内处理。",
    ]


@template("zh_callback_unallocated")
def _zh_callback_unallocated(g: Gen) -> list[Part]:
    label = g.pick(["手机号", "联系电话", "手机"])
    return [
        f"回访记录 {g.date().isoformat()}\n客户留下的{label}：",
        g.mobile_unallocated(),
        "，拨打提示空号，疑似填写错误。\n备用座机：",
        g.landline(),
        "\n回访人：",
        g.person_zh(),
    ]


@template("zh_mixed_negative_keyword")
def _zh_mixed_negative_keyword(g: Gen) -> list[Part]:
    r = g.rng.random()
    if r < 0.35:
        return ["身份证号 ", g.cn_id("plain"), f"，订单号 {luhn_number(g, 12)}，请核对后发货。"]
    if r < 0.7:
        return [
            f"订单号 {uscc_like_order(g)}，联系人手机号 ",
            g.mobile(),
            "，收件人 ",
            g.person_zh(),
            "。",
        ]
    return [
        f"快递单号 {luhn_number(g, 16)}，收件人",
        g.person_zh(),
        "，电话",
        g.mobile("plain"),
        "，银行卡 ",
        g.card(style="plain"),
        " 已退款。",
    ]


# --- hospital ---------------------------------------------------------------------------------


@template("zh_discharge_note")
def _zh_discharge_note(g: Gen) -> list[Part]:
    p = g.person_zh()
    return [
        f"{g.pick(HOSPITALS)} 出院小结\n姓名：",
        p,
        f"  性别：{sex(g)}  年龄：{g.rng.randrange(18, 90)}岁  住院号：{g.order_no(8)}\n身份证号：",
        g.cn_id(),
        "\n家庭住址：",
        g.address_zh("full"),
        "\n联系电话：",
        g.mobile(),
        f"\n入院日期：{g.date().isoformat()}  出院日期：{g.date().isoformat()}\n"
        f"出院诊断：{g.pick(DIAG_ZH)}\n出院医嘱：低盐低脂饮食，两周后门诊复查。\n患者",
        p,
        "出院时一般情况可。\n主治医生：",
        g.person_zh(),
        "医生",
    ]


@template("zh_outpatient_record")
def _zh_outpatient_record(g: Gen) -> list[Part]:
    return [
        f"门诊病历  科室：{g.pick(['心内科', '呼吸科', '骨科', '内分泌科'])}\n患者：",
        g.person_zh(),
        f"，{sex(g)}，{g.rng.randrange(5, 90)}岁\n"
        "主诉：咳嗽 3 天，体温 38.2℃。\n医嘱：多饮水，复诊。\n"
        "接诊医生：",
        g.person_zh(),
        "医生\n预约复诊请拨打 ",
        g.landline(),
    ]


@template("zh_lab_report")
def _zh_lab_report(g: Gen) -> list[Part]:
    return [
        f"检验报告单\n标本编号：{g.date().strftime('%Y%m%d')}-"
        f"{g.rng.randrange(1, 999):04d}\n姓名：",
        g.person_zh(),
        f"  性别：{sex(g)}  门诊号：{g.order_no(9)}\n送检医生：",
        g.person_zh(),
        "\n血红蛋白 132 g/L；白细胞 6.5×10^9/L\n报告医生：",
        g.person_zh(),
        "医生  审核：",
        g.person_zh(),
    ]


# --- HR --------------------------------------------------------------------------------------


@template("zh_hr_onboarding_mail")
def _zh_hr_onboarding_mail(g: Gen) -> list[Part]:
    p = g.person_zh()
    return [
        "发件人：",
        g.email(),
        "\n收件人：",
        g.email(),
        "\n主题：入职材料确认\n\n",
        p,
        g.pick(["先生", "女士", "同学"]),
        f"，您好：\n欢迎加入{g.company_zh()}！请于{g.date().isoformat()}携带身份证原件（",
        g.cn_id(),
        "）到",
        g.address_zh(),
        "报到。工资卡登记卡号 ",
        g.card(),
        "。\n如有疑问请联系 HR ",
        g.person_zh(),
        "经理，电话 ",
        g.landline("dash"),
        f" 转 {g.rng.randrange(100, 9999)}。",
    ]


@template("zh_hr_salary_csv")
def _zh_hr_salary_csv(g: Gen) -> list[Part]:
    parts: list[Part] = ["工号,姓名,身份证号,工资卡号,手机\n"]
    for _ in range(g.rng.randrange(2, 4)):
        parts += [
            f"E{g.rng.randrange(10000, 99999)},",
            g.person_zh(),
            ",",
            g.cn_id("plain"),
            ",",
            g.card(style="plain"),
            ",",
            g.mobile("plain"),
            "\n",
        ]
    return parts


@template("en_hr_offer_mail")
def _en_hr_offer_mail(g: Gen) -> list[Part]:
    return [
        "Subject: Your offer from ",
        g.company_en(),
        "\n\nDear ",
        g.title_en(),
        g.person_en(),
        ",\n\nWe are pleased to confirm "
        f"your start date of {g.date().strftime('%B %d, %Y')}. Please return the signed W-4; "
        "the SSN we have on "
        "file is ",
        g.ssn(g.pick(["dash", "space"])),
        ". Salary will be paid to IBAN ",
        g.iban(),
        ".\n\nKind regards,\n",
        g.person_en(),
        "\nHR Manager | ",
        g.email("en"),
    ]


# --- banking ---------------------------------------------------------------------------------


@template("zh_bank_transfer")
def _zh_bank_transfer(g: Gen) -> list[Part]:
    return [
        f"交易明细\n交易时间：{g.ts()}\n付款人：",
        g.person_zh(),
        "\n付款卡号：",
        g.card(),
        "\n收款人：",
        g.person_zh(),
        "\n收款卡号：",
        g.card(),
        f"\n金额：{g.amount()} 元\n交易流水号：{g.order_no(20)}\n"
        f"附言：{g.pick(['房租', '货款', '还款', '学费'])}",
    ]


@template("zh_sms_notice")
def _zh_sms_notice(g: Gen) -> list[Part]:
    return [
        f"【{g.pick(BANKS_ZH)}】尊敬的",
        g.person_zh(),
        g.pick(["先生", "女士"]),
        f"，您尾号{g.digits(4)}的储蓄卡于{g.date().strftime('%m月%d日')}支出{g.amount()}元。如非本人操作，请致电"
        f"{g.pick(['95588', '95533', '95555', '95599'])}。回复 TD 退订",
    ]


@template("en_bank_statement")
def _en_bank_statement(g: Gen) -> list[Part]:
    return [
        "MONTHLY STATEMENT  Period: 01/05/2024 - 31/05/2024\nAccount holder: ",
        g.person_en(),
        "\nIBAN: ",
        g.iban(),
        "\nDebit card: ",
        g.card("en"),
        f"\nOpening balance: EUR {g.amount()}\nClosing balance: EUR {g.amount()}\n"
        "Mailing address: ",
        g.address_en(),
    ]


@template("en_wire_transfer")
def _en_wire_transfer(g: Gen) -> list[Part]:
    return [
        "Beneficiary: ",
        g.title_en(),
        g.person_en(),
        "\nIBAN: ",
        g.iban(),
        f"\nBIC: {g.pick(['DEUTDEFF', 'NWBKGB2L', 'INGBNL2A'])}"
        f"\nAmount: EUR {g.amount()}\n"
        f"Reference: INV-{g.date().year}-{g.rng.randrange(1, 9999):04d}\nOrdered by: ",
        g.person_en(),
        " (",
        g.email("en"),
        ")",
    ]


@template("zh_loan_application")
def _zh_loan_application(g: Gen) -> list[Part]:
    return [
        "个人消费贷款申请表\n申请人：",
        g.person_zh(),
        "\n身份证号码：",
        g.cn_id(),
        f"\n工作单位：{g.company_zh()}\n单位地址：",
        g.address_zh("city"),
        "\n单位电话：",
        g.landline(),
        "\n收款银行卡：",
        g.card(),
        "\n紧急联系人：",
        g.person_zh(),
        f"（{g.pick(['配偶', '父亲', '母亲', '朋友'])}） 手机 ",
        g.mobile(),
        f"\n申请金额：{g.rng.randrange(1, 50) * 10000} 元",
    ]


# --- logs ------------------------------------------------------------------------------------


@template("zh_app_log")
def _zh_app_log(g: Gen) -> list[Part]:
    return [
        f"{g.ts()}.{g.rng.randrange(1000):03d} INFO [auth] login ok "
        f"uid={g.rng.randrange(10**6, 10**7)} phone=",
        g.mobile(g.pick(["86", "plain", "+86glued"])),
        " ip=",
        g.ip(),
        f' ua="{UA}"\n{g.ts()} WARN [sms] resend code to ',
        g.mobile("plain"),
        " retry=2\n",
    ]


@template("en_server_log")
def _en_server_log(g: Gen) -> list[Part]:
    parts: list[Part] = []
    for _ in range(g.rng.randrange(2, 4)):
        parts += [
            g.ip(),
            f" - - [12/Jun/2024:{g.rng.randrange(24):02d}:{g.rng.randrange(60):02d}:11 +0000] "
            '"GET /api/v1/users?email=',
            g.email("en"),
            f' HTTP/1.1" 200 {g.rng.randrange(100, 9000)} "-" "{UA}"\n',
        ]
    return parts


@template("zh_audit_log_json")
def _zh_audit_log_json(g: Gen) -> list[Part]:
    ip = g.ipv6() if g.chance(0.5) else g.ipv4()
    return [
        f'{{"ts": "{g.ts()}", "event": "{g.pick(["download", "export", "login"])}", "user": "',
        g.email(),
        '", "src_ip": "',
        ip,
        f'", "app_version": "2.{g.rng.randrange(30)}.{g.rng.randrange(30)}.{g.rng.randrange(99)}", '
        f'"trace_id": "{g.fe.uuid4()}"}}',
    ]


@template("mixed_devops_alert")
def _mixed_devops_alert(g: Gen) -> list[Part]:
    return [
        f"[ALERT] prod-db-0{g.rng.randrange(1, 9)} (",
        g.ipv4(),
        f") CPU 97% at {g.ts()}\nfailover target: [",
        g.ipv6(),
        "]:5432\nOn-call: ",
        g.person_pinyin(),
        " (",
        g.mobile("+86"),
        ")\n值班经理：",
        g.person_zh(),
        "经理，固件版本 3.1.0.12",
    ]


@template("en_security_alert")
def _en_security_alert(g: Gen) -> list[Part]:
    return [
        "Security alert for ",
        g.email("en"),
        "\nA new sign-in was detected from ",
        g.ipv6(g.pick(["trailing", "compressed", "full"])),
        f" on {g.date().strftime('%A, %B %d, %Y')} using Chrome/128.0.0.0 on Windows.\n"
        "If this was not you, call ",
        g.us_phone(),
        " or reset your password.",
    ]


# --- CSV / JSON / SQL -------------------------------------------------------------------------


@template("zh_csv_order")
def _zh_csv_order(g: Gen) -> list[Part]:
    parts: list[Part] = ["订单号,收货人,联系电话,收货地址,下单时间\n"]
    for _ in range(g.rng.randrange(1, 4)):
        parts += [
            g.order_no(16),
            ",",
            g.person_zh(),
            ",",
            g.mobile(g.pick(["plain", "dash", "sp"])),
            ",",
            g.address_zh(),
            f",{g.ts()}\n",
        ]
    return parts


@template("zh_json_order")
def _zh_json_order(g: Gen) -> list[Part]:
    return [
        f'{{"orderNo": "{g.order_no(16)}", "name": "',
        g.person_zh(),
        '", "phone": "',
        g.mobile(),
        '", "收货地址": "',
        g.address_zh(),
        f'", "amount": {g.amount().replace(",", "")}, "status": "PAID"}}',
    ]


@template("en_csv_contacts")
def _en_csv_contacts(g: Gen) -> list[Part]:
    parts: list[Part] = ["name,address,phone,email\n"]
    for _ in range(g.rng.randrange(1, 4)):
        parts += [g.person_en(), ',"', g.address_en(), '",', g.us_phone(), ",", g.email("en"), "\n"]
    return parts


@template("en_json_profile")
def _en_json_profile(g: Gen) -> list[Part]:
    return [
        f'{{"id": "{g.fe.uuid4()}", "name": "',
        g.person_en(),
        '", "address": "',
        g.address_en(),
        '", "phone": "',
        g.us_phone(),
        '", "email": "',
        g.email("en"),
        '", "last_login_ip": "',
        g.ip(),
        '"}',
    ]


@template("zh_db_dump")
def _zh_db_dump(g: Gen) -> list[Part]:
    return [
        "INSERT INTO customer (name, id_card, mobile, email, addr, created_at) VALUES ('",
        g.person_zh(),
        "', '",
        g.cn_id("plain"),
        "', '",
        g.mobile("plain"),
        "', '",
        g.email(),
        "', '",
        g.address_zh(),
        f"', '{g.ts()}');",
    ]


@template("mixed_kyc_form")
def _mixed_kyc_form(g: Gen) -> list[Part]:
    return [
        f"KYC 表单 / KYC form\n客户名称 Company: {g.company_zh()}\n统一社会信用代码 USCC: ",
        g.uscc(),
        "\n法定代表人 Legal rep.: ",
        g.person_zh(),
        "\n证件号 ID No.: ",
        g.cn_id(),
        "\n境外账户 IBAN: ",
        g.iban(),
        "\nContact: ",
        g.email(),
    ]


# --- OCR'd documents ---------------------------------------------------------------------


@template("zh_ocr_id_card")
def _zh_ocr_id_card(g: Gen) -> list[Part]:
    born = g.date(1955, 2005)
    colon = g.pick(["", " ", "："])
    return [
        f"姓名{colon}",
        g.person_zh(),
        f"\n性别{colon}{sex(g)}  民族{colon}汉\n"
        f"出生{colon}{born.year}年{born.month}月{born.day}日\n"
        f"住址{colon}",
        g.address_zh(g.pick(["full", "village"])),
        f"\n公民身份号码{colon}",
        g.cn_id(g.pick(["plain", "stray", "full", "684", "zw"]), born=born),
        f"\n签发机关 公安局  有效期限 {g.date(2015, 2020).strftime('%Y.%m.%d')}-长期",
    ]


@template("zh_ocr_business_license")
def _zh_ocr_business_license(g: Gen) -> list[Part]:
    return [
        "营 业 执 照\n统一社会信用代码 ",
        g.uscc(),
        f"\n名 称 {g.company_zh()}\n类 型 有限责任公司\n法定代表人 ",
        g.person_zh(),
        "\n注册资本 壹仟万元整\n成立日期 2015年03月12日\n住 所 ",
        g.address_zh("full"),
    ]


@template("zh_invoice")
def _zh_invoice(g: Gen) -> list[Part]:
    return [
        f"增值税电子普通发票\n发票号码：{g.order_no(8)}  "
        f"开票日期：{g.date().strftime('%Y年%m月%d日')}\n"
        f"购买方名称：{g.company_zh()}\n纳税人识别号：",
        g.uscc(),
        "\n地址、电话：",
        g.address_zh("city"),
        " ",
        g.landline(),
        f"\n销售方名称：{g.company_zh()}\n纳税人识别号：",
        g.uscc(),
        f"\n价税合计（小写）：¥{g.amount()}\n开票人：",
        g.person_zh(),
    ]


@template("zh_enterprise_registration")
def _zh_enterprise_registration(g: Gen) -> list[Part]:
    return [
        f"企业信息公示\n企业名称：{g.company_zh()}\n统一社会信用代码：",
        g.uscc(),
        "\n法定代表人：",
        g.person_zh(),
        "\n注册地址：",
        g.address_zh("full"),
        "\n联系电话：",
        g.landline(),
        "\n企业邮箱：",
        g.email(),
        "\n经营范围：软件开发；信息技术咨询服务。",
    ]


# --- shipping --------------------------------------------------------------------------------


@template("zh_shipping_label")
def _zh_shipping_label(g: Gen) -> list[Part]:
    return [
        f"{g.pick(['顺丰速运', '中通快递', '京东物流'])}  运单号 SF{g.order_no(12)}\n寄件人：",
        g.person_zh(),
        " ",
        g.mobile(),
        "\n寄件地址：",
        g.address_zh(),
        "\n收件人：",
        g.person_zh(),
        " ",
        g.mobile(),
        "\n收件地址：",
        g.address_zh("full"),
        "\n托寄物：文件  重量：0.5kg",
    ]


@template("zh_courier_glued")
def _zh_courier_glued(g: Gen) -> list[Part]:
    return [
        "收件人",
        g.person_zh(),
        "Tel",
        g.mobile("plain"),
        "地址",
        g.address_zh(),
        "IDcard",
        g.cn_id("plain"),
        " 备注：放门口",
    ]


@template("en_shipping_label")
def _en_shipping_label(g: Gen) -> list[Part]:
    return [
        "SHIP TO:\n",
        g.title_en(),
        g.person_en(),
        "\n",
        g.address_en(),
        "\nTEL ",
        g.us_phone(),
        f"\nTRACKING # 1Z{g.order_no(6)}{g.pick(['A', 'E', 'X'])}{g.order_no(9)}\nWEIGHT 2.4 LBS",
    ]


@template("mixed_crossborder_order")
def _mixed_crossborder_order(g: Gen) -> list[Part]:
    return [
        f"Order #{g.order_no(10)}\nBuyer: ",
        g.person_en(),
        "\nUS phone: ",
        g.us_phone(),
        "\n收货人：",
        g.person_zh(),
        "\n收货地址：",
        g.address_zh(),
        "\n联系电话：",
        g.mobile(),
        "\nItems: Vitamin D3 x2",
    ]


# --- chat ------------------------------------------------------------------------------------


def hm(g: Gen) -> str:
    return f"{g.rng.randrange(8, 23):02d}:{g.rng.randrange(60):02d}"


@template("zh_chat_transcript")
def _zh_chat_transcript(g: Gen) -> list[Part]:
    cust = g.person_zh()
    return [
        f"[{hm(g)}] 客服：您好，请问有什么可以帮您？\n[{hm(g)}] ",
        cust,
        f"：快递三天没动了\n[{hm(g)}] 客服：麻烦提供一下下单手机号\n[{hm(g)}] ",
        cust,
        "：",
        g.mobile(g.pick(["dot", "sp", "dash", "noisy"])),
        f"\n[{hm(g)}] 客服：好的，已为您催件。\n",
    ]


@template("zh_wechat_group")
def _zh_wechat_group(g: Gen) -> list[Part]:
    return [
        "【业主群】\n",
        g.person_zh(),
        "：谁的车 ",
        g.plate(),
        " 挡住地库出口了？\n",
        g.person_zh(),
        "：我的，马上挪\n",
        g.person_zh(),
        "：下次注意，有事打我电话 ",
        g.mobile(),
        "\n",
    ]


@template("en_chat_transcript")
def _en_chat_transcript(g: Gen) -> list[Part]:
    return [
        f"[{hm(g)}] Agent: Thanks for contacting support, who am I speaking with?\n"
        f"[{hm(g)}] Customer: This is ",
        g.title_en(),
        g.person_en(),
        f". My router keeps dropping every Monday.\n[{hm(g)}] Agent: Sorry to hear that.\n"
        f"[{hm(g)}] Customer: please call me at ",
        g.us_phone(),
        " after 5pm\n",
    ]


@template("mixed_chat_im")
def _mixed_chat_im(g: Gen) -> list[Part]:
    return [
        "IM 记录\n",
        g.person_pinyin(),
        ": 我的邮箱是 ",
        g.email(),
        "，手机 ",
        g.mobile(g.pick(["+86", "+86sp", "86"])),
        "\n",
        g.person_pinyin(),
        ": ok, I'll send the contract tonight. 发到公司座机 ",
        g.landline("intl"),
        " 也行",
    ]


# --- vehicles --------------------------------------------------------------------------------


@template("zh_traffic_violation")
def _zh_traffic_violation(g: Gen) -> list[Part]:
    return [
        "【交通违法提醒】车主",
        g.person_zh(),
        "，您的车辆 ",
        g.plate(),
        f" 于{g.ts()}在高速路段超速 20% 以上，驾驶证号 ",
        g.cn_id("plain"),
        "，记 6 分，罚款 200 元。",
    ]


@template("zh_parking_log")
def _zh_parking_log(g: Gen) -> list[Part]:
    parts: list[Part] = []
    for _ in range(g.rng.randrange(2, 5)):
        parts += [
            f"{g.ts()} [gate-E{g.rng.randrange(1, 5)}] plate=",
            g.plate(g.pick(["plain", "plain", "dash"])),
            f" event={g.pick(['entry', 'exit'])} fee={g.rng.randrange(0, 60)}.00\n",
        ]
    return parts


@template("zh_property_notice")
def _zh_property_notice(g: Gen) -> list[Part]:
    return [
        "物业通知：",
        g.address_zh("unit"),
        "业主",
        g.person_zh(),
        "，您的车辆",
        g.plate(),
        "长期占用消防通道，请尽快挪走。物业服务中心电话 ",
        g.landline(),
        "。",
    ]


@template("zh_hotel_checkin")
def _zh_hotel_checkin(g: Gen) -> list[Part]:
    return [
        f"入住登记  房号 {g.rng.randrange(2, 30)}{g.rng.randrange(1, 40):02d}\n入住人：",
        g.person_zh(),
        "\n证件类型：身份证  证件号码：",
        g.cn_id(g.pick(["684", "plain", "stray"])),
        "\n手机：",
        g.mobile(),
        "\n车牌：",
        g.plate(),
        f"\n入住时间：{g.ts()}",
    ]


@template("zh_insurance_claim")
def _zh_insurance_claim(g: Gen) -> list[Part]:
    return [
        f"车险理赔申请\n报案号：{g.order_no(14)}\n被保险人：",
        g.person_zh(),
        "\n证件号码：",
        g.cn_id("684"),
        f"\n出险时间：{g.ts()}\n车牌号：",
        g.plate(),
        "\n收款账户：",
        g.card(style="sp4"),
        "\n联系手机：",
        g.mobile(),
    ]


# --- letters, notices, contracts --------------------------------------------------------


@template("zh_complaint_letter")
def _zh_complaint_letter(g: Gen) -> list[Part]:
    addr = (g.pick(["阳光花园", "翠苑小区", "金色家园", "滨江花园"]) + g.unit(), "ADDRESS")
    return [
        "投诉信\n本人",
        g.person_zh(),
        "，住",
        addr,
        "。楼上住户长期深夜装修，噪音严重影响休息，多次与物业沟通无果，特此投诉。\n联系方式：",
        g.mobile(),
        "\n",
        g.date().strftime("%Y年%m月%d日"),
    ]


@template("zh_school_notice")
def _zh_school_notice(g: Gen) -> list[Part]:
    return [
        "各位家长：本周五下午 3 点召开家长会，请准时参加。学生",
        g.person_zh(),
        "的家长",
        g.person_zh(),
        "请会后留步。如有事请联系班主任",
        g.person_zh(),
        "老师，电话 ",
        g.mobile(),
        "。",
    ]


@template("zh_rental_contract")
def _zh_rental_contract(g: Gen) -> list[Part]:
    return [
        "房屋租赁合同\n出租方（甲方）：",
        g.person_zh(),
        "  身份证号：",
        g.cn_id(),
        "\n承租方（乙方）：",
        g.person_zh(),
        "  身份证号：",
        g.cn_id(),
        "\n房屋坐落：",
        g.address_zh("full"),
        f"\n租金：每月 {g.amount()} 元，支付至甲方银行卡 ",
        g.card(),
        f"（开户行：{g.pick(BANKS_ZH)}）\n联系电话：甲方 ",
        g.mobile(),
        "；乙方 ",
        g.mobile(),
    ]


@template("zh_visa_application")
def _zh_visa_application(g: Gen) -> list[Part]:
    return [
        "签证申请表\n中文姓名：",
        g.person_zh(),
        "\n拼音姓名：",
        g.person_pinyin("upper"),
        "\n护照号码：",
        g.passport(),
        f"\n出生日期：{g.date(1960, 2005).isoformat()}\n手机：",
        g.mobile(),
        "\n电子邮箱：",
        g.email(),
        "\n现居住地址：",
        g.address_zh(),
    ]


# --- English ----------------------------------------------------------------------------------


@template("en_support_ticket")
def _en_support_ticket(g: Gen) -> list[Part]:
    return [
        f"Ticket #{g.order_no(7)} | Priority: High\nFrom: ",
        g.person_en(),
        " <",
        g.email("en"),
        ">\nPhone: ",
        g.us_phone(),
        "\nAddress: ",
        g.address_en(),
        f"\n\nHi, my order {g.order_no(10)} arrived damaged on {g.date().strftime('%A')}. "
        "Please send a replacement.",
    ]


@template("en_discharge_summary")
def _en_discharge_summary(g: Gen) -> list[Part]:
    p = g.person_en()
    return [
        "DISCHARGE SUMMARY\nPatient: ",
        p,
        f"   DOB: {g.date(1940, 2005).strftime('%m/%d/%Y')}   MRN: {g.order_no(8)}\n"
        "Attending: Dr. ",
        g.person_en(),
        "\nHome address: ",
        g.address_en(),
        "\nPhone: ",
        g.us_phone(),
        "\nSSN: ",
        g.ssn(g.pick(["dash", "plain"])),
        "\nThe patient ",
        p,
        " was discharged in stable condition.",
    ]


@template("en_medical_referral")
def _en_medical_referral(g: Gen) -> list[Part]:
    return [
        "Referral letter\nDear Dr. ",
        g.person_en(),
        ",\nI am referring my patient, ",
        g.person_en(),
        f", aged {g.rng.randrange(20, 80)}, for evaluation of chest pain. "
        "Please contact the clinic at ",
        g.us_phone(),
        ".\nSincerely,\nDr. ",
        g.person_en(),
        ", MD",
    ]


@template("en_form_glued")
def _en_form_glued(g: Gen) -> list[Part]:
    return [
        "Name:",
        g.person_en(),
        "|Phone:",
        g.us_phone(g.pick(["+1dash", "dash", "dot"])),
        "|Email:",
        g.email("en"),
        "|SSN:",
        g.ssn("dash"),
        "|Card:",
        g.card("en", "plain"),
    ]


# --- mixed -----------------------------------------------------------------------------------


@template("mixed_ticket")
def _mixed_ticket(g: Gen) -> list[Part]:
    return [
        "Customer ",
        g.person_zh(),
        " (",
        g.person_pinyin("sf"),
        ") called from ",
        g.mobile(g.pick(["+86", "+86dash", "+86sp"])),
        ", email ",
        g.email(),
        f". 客户反映 app_version=2.13.{g.rng.randrange(40)}.{g.rng.randrange(99)} "
        "闪退，已升级处理。",
    ]


@template("mixed_travel_booking")
def _mixed_travel_booking(g: Gen) -> list[Part]:
    return [
        f"Booking ref {g.pick('ABCDEFGHJK')}{g.pick('LMNPQRSTUV')}{g.order_no(4)}\n"
        "乘机人 Passenger: ",
        g.person_pinyin("upper"),
        "\n护照 Passport No.: ",
        g.passport(),
        "\nMobile: ",
        g.mobile("+86"),
        "\nEmail: ",
        g.email(),
        f"\nFlight MU{g.rng.randrange(100, 999)} PVG-LAX {g.date().isoformat()}",
    ]


@template("mixed_email_signature")
def _mixed_email_signature(g: Gen) -> list[Part]:
    return [
        "Thanks, talk on Monday.\n\nBest regards,\n",
        g.person_en() if g.chance(0.5) else g.person_pinyin("fs"),
        f"\nSenior Manager, {g.company_en()}\nM: ",
        g.mobile("+86sp"),
        " | T: ",
        g.landline("intl"),
        "\nE: ",
        g.email(),
        "\n",
        g.address_zh("full"),
    ]


@template("mixed_meeting_notes")
def _mixed_meeting_notes(g: Gen) -> list[Part]:
    return [
        f"会议纪要 Meeting notes {g.date().isoformat()}\n参会人：",
        g.person_zh(),
        "、",
        g.person_zh(),
        "、",
        g.person_en(),
        "\n1. Python 服务迁移到 Kubernetes，见第 4.1.5.2 条。\n2. 测试环境地址 ",
        g.ipv4(),
        "\n记录人：",
        g.person_zh(),
    ]


@template("mixed_us_cn_contact")
def _mixed_us_cn_contact(g: Gen) -> list[Part]:
    return [
        "联系人 Contact: ",
        g.person_en(),
        "\nOffice: ",
        g.address_en(),
        "\nTel: ",
        g.us_phone(),
        "\n中国区联系人：",
        g.person_zh(),
        "女士，手机 ",
        g.mobile(),
        "，座机 ",
        g.landline(),
    ]
