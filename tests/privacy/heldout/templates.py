"""The held-out corpus's document templates.

Each template is a function of a Values that returns a template text and its values: the
text holds [[key]] placeholders; a value is a plain str (not personal data, never labelled)
or a Lab (labelled with its type at every place it is put).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable

from .values import Lab, Values

Filled = tuple[str, dict[str, "str | Lab"]]
TEMPLATES: dict[str, Callable[[Values], Filled]] = {}

_PLACEHOLDER = re.compile(r"\[\[(\w+)\]\]")


def template(name: str):
    def register(fn: Callable[[Values], Filled]) -> Callable[[Values], Filled]:
        assert name not in TEMPLATES, name
        TEMPLATES[name] = fn
        return fn

    return register


def render(tpl: str, values: dict[str, str | Lab]) -> tuple[str, list[tuple[int, int, str]]]:
    """Fill the placeholders; return the text and the exact spans of the Lab values."""
    tpl = textwrap.dedent(tpl).strip("\n")
    parts: list[str] = []
    labels: list[tuple[int, int, str]] = []
    pos = last = 0
    for m in _PLACEHOLDER.finditer(tpl):
        literal = tpl[last : m.start()]
        parts.append(literal)
        pos += len(literal)
        value = values[m.group(1)]
        if isinstance(value, Lab):
            labels.append((pos, pos + len(value.text), value.type))
            text = value.text
        else:
            text = str(value)
        parts.append(text)
        pos += len(text)
        last = m.end()
    parts.append(tpl[last:])
    return "".join(parts), labels


# --- Chinese official and legal documents ------------------------------------------------


@template("police_incident_zh")
def _police_incident(v: Values) -> Filled:
    tpl = """
    [[city]]市公安局[[branch]]分局
    接处警工作登记表
    警情编号：J[[caseno]]
    接警时间：[[date]] [[time]]      接警方式：110转警
    报警人：[[name]]（[[sex]]，[[age]]岁）
    公民身份号码：[[id]]
    联系电话：[[phone]]
    发案地点：[[addr]]
    简要警情：报警人称其于当日[[time2]]许发现停放在楼下的电动自行车被盗，车辆为[[brand]]牌，
    价值约[[amount]]元。经初步查看，现场无监控。报警人请求调取周边视频。
    处理结果：已受案，移交刑侦中队。
    处警民警：[[officer]]（警号[[badge]]）  辅警：[[aux]]
    """
    return tpl, {
        "city": v.city_name(),
        "branch": v.pick(["城东", "开发区", "高新", "城南", "滨湖"]),
        "caseno": v.digits(12),
        "date": v.date_zh(),
        "time": v.time(),
        "time2": v.time(),
        "name": v.zh_name(),
        "sex": v.sex_zh(),
        "age": str(v.r.randint(19, 78)),
        "id": v.resident_id(),
        "phone": v.cn_phone(),
        "addr": v.zh_address(),
        "brand": v.pick(["雅迪", "爱玛", "小牛", "台铃", "九号"]),
        "amount": str(v.r.randint(800, 6000)),
        "officer": v.zh_name(),
        "badge": v.digits(6),
        "aux": v.zh_name(),
    }


@template("court_judgement_zh")
def _court_judgement(v: Values) -> Filled:
    tpl = """
    [[court]]人民法院
    民 事 判 决 书
    （[[year]]）[[code]]民初[[num]]号

    原告：[[p]]，[[psex]]，[[pbirth]]出生，汉族，住[[paddr]]。
    委托诉讼代理人：[[lawyer]]，[[firm]]律师事务所律师。
    被告：[[d]]，[[dsex]]，[[dbirth]]出生，汉族，住[[daddr]]，公民身份号码[[did]]。

    原告[[p]]与被告[[d]]民间借贷纠纷一案，本院于[[date]]立案后，依法适用简易程序，
    公开开庭进行了审理。原告[[p]]及其委托诉讼代理人[[lawyer]]到庭参加诉讼，被告[[d]]
    经本院传票传唤无正当理由拒不到庭。
    原告[[p]]向本院提出诉讼请求：1.判令被告偿还借款本金[[amount]]元及利息；2.本案诉讼费
    由被告承担。事实与理由：原告通过其名下银行卡[[card]]分三次向被告转账，被告出具借条
    一份，约定于[[date2]]前归还，到期后被告未还款。
    本院认为，合法的借贷关系受法律保护。依照《中华人民共和国民法典》第六百七十五条之规定，
    判决如下：被告[[d]]于本判决生效之日起十日内偿还原告[[p]]借款本金[[amount]]元。
    """
    return tpl, {
        "court": v.city_name() + "市" + v.pick(["西湖区", "鼓楼区", "天河区", "和平区"]),
        "year": str(v.r.randint(2019, 2024)),
        "code": v.pick(["浙0106", "苏0106", "粤0106", "京0105", "沪0115"]),
        "num": str(v.r.randint(100, 29999)),
        "p": v.zh_name(),
        "psex": v.sex_zh(),
        "pbirth": f"{v.r.randint(1955, 2000)}年{v.r.randint(1, 12)}月{v.r.randint(1, 28)}日",
        "paddr": v.zh_address(),
        "lawyer": v.zh_name(),
        "firm": v.pick(["浙江兰亭", "北京天元", "上海锦天城", "广东广和", "江苏漫修"]),
        "d": v.zh_name(),
        "dsex": v.sex_zh(),
        "dbirth": f"{v.r.randint(1955, 2000)}年{v.r.randint(1, 12)}月{v.r.randint(1, 28)}日",
        "daddr": v.zh_address(),
        "did": v.resident_id(),
        "date": v.date_zh(),
        "date2": v.date_zh(),
        "amount": f"{v.r.randint(2, 90) * 1000}",
        "card": v.bank_card(),
    }


@template("insurance_claim_zh")
def _insurance_claim(v: Values) -> Filled:
    tpl = """
    [[insurer]]保险股份有限公司
    个人医疗保险理赔申请书
    保单号：[[policy]]        报案号：RP[[report]]
    一、被保险人信息
    姓名：[[insured]]    证件类型：居民身份证    证件号码：[[id]]
    手机：[[phone]]    电子邮箱：[[email]]
    二、出险信息
    出险时间：[[date]]    出险地点：[[place]]
    出险经过：被保险人在家中摔倒致右腕骨折，于[[hospital]]急诊就诊，住院[[days]]天。
    申请金额：人民币[[amount]]元
    三、领款人信息（须为被保险人本人账户）
    户名：[[insured]]    开户银行：[[bank]][[branch]]支行
    银行账号：[[card]]
    申请人签名：[[insured]]        日期：[[date2]]
    """
    return tpl, {
        "insurer": v.pick(["中国人寿", "中国平安", "太平洋", "泰康人寿", "新华人寿"]),
        "policy": "P" + v.digits(16),
        "report": v.digits(14),
        "insured": v.zh_name(),
        "id": v.resident_id(),
        "phone": v.cn_phone(),
        "email": v.email(),
        "date": v.date_zh(),
        "place": v.zh_address(),
        "hospital": v.city_name() + "市第一人民医院",
        "days": str(v.r.randint(2, 21)),
        "amount": v.amount(1000, 90000),
        "bank": v.bank_name(),
        "branch": v.pick(["城西", "解放路", "科技园", "新区", "人民广场"]),
        "card": v.bank_card(),
        "date2": v.date_zh(),
    }


@template("school_enrolment_zh")
def _school_enrolment(v: Values) -> Filled:
    tpl = """
    [[school]]  [[year]]级新生入学信息登记表
    学生姓名：[[child]]    性别：[[sex]]    民族：汉
    出生日期：[[birth]]
    身份证号：[[cid]]
    家庭住址：[[addr]]
    户籍所在地：[[hukou]]
    ----------------------------------------
    监护人一：[[g1]]    与学生关系：[[rel1]]
    工作单位：[[work1]]
    联系电话：[[ph1]]
    监护人二：[[g2]]    与学生关系：[[rel2]]
    联系电话：[[ph2]]    身份证号：[[gid2]]
    ----------------------------------------
    是否需要校车：[[bus]]    既往病史：无    过敏史：[[allergy]]
    """
    year = v.r.randint(2021, 2025)
    return tpl, {
        "school": v.city_name() + v.pick(["市实验小学", "市第二中学", "外国语学校", "育才小学"]),
        "year": str(year),
        "child": v.zh_name(),
        "sex": v.sex_zh(),
        "birth": f"{year - 6}年{v.r.randint(1, 12)}月",
        "cid": v.resident_id(2013, 2019),
        "addr": v.zh_address(),
        "hukou": v.zh_address(v.pick(["full", "rural"])),
        "g1": v.zh_name(),
        "rel1": "父亲",
        "work1": v.company_zh(),
        "ph1": v.cn_phone(),
        "g2": v.zh_name(),
        "rel2": "母亲",
        "ph2": v.cn_phone(),
        "gid2": v.resident_id(1975, 1995),
        "bus": v.pick(["是", "否"]),
        "allergy": v.pick(["无", "青霉素", "花生", "海鲜"]),
    }


@template("rental_contract_zh")
def _rental_contract(v: Values) -> Filled:
    tpl = """
    房屋租赁合同
    出租方（甲方）：[[a]]    身份证号：[[aid]]    电话：[[aph]]
    承租方（乙方）：[[b]]    身份证号：[[bid]]    电话：[[bph]]
    第一条 甲方将其所有的位于[[addr]]的房屋（建筑面积[[area]]平方米）出租给乙方居住使用。
    第二条 租赁期限自[[d1]]起至[[d2]]止。
    第三条 月租金为人民币[[rent]]元，押一付三。乙方应于每月五日前将租金转入甲方指定账户：
    开户行[[bank]]，户名[[a]]，卡号[[card]]。
    第四条 租赁期间水、电、燃气及物业费由乙方承担。
    甲方（签字）：[[a]]            乙方（签字）：[[b]]
    签订日期：[[d1]]
    """
    return tpl, {
        "a": v.zh_name(),
        "aid": v.resident_id(),
        "aph": v.cn_phone(),
        "b": v.zh_name(),
        "bid": v.resident_id(),
        "bph": v.cn_phone(),
        "addr": v.zh_address(v.pick(["full", "city"])),
        "area": str(v.r.randint(35, 160)),
        "d1": v.date_zh(),
        "d2": v.date_zh(),
        "rent": str(v.r.randint(12, 90) * 100),
        "bank": v.bank_name(),
        "card": v.bank_card(),
    }


@template("lost_and_found_zh")
def _lost_and_found(v: Values) -> Filled:
    tpl = """
    失物招领启事
    [[date]]，我站工作人员在[[line]]号线[[station]]站站台拾到黑色钱包一个，内有居民身份证一张
    （姓名：[[owner]]，号码：[[id]]），[[bank]]借记卡一张（卡号[[card]]）及现金若干。
    请失主携带有效证件到站务室认领，或致电值班站长[[staff]]：[[phone]]。
    [[city]]地铁运营有限公司  [[date]]
    """
    return tpl, {
        "date": v.date_zh(),
        "line": str(v.r.randint(1, 16)),
        "station": v.pick(["人民广场", "市民中心", "火车东", "体育中心", "大学城北", "中山公园"]),
        "owner": v.zh_name(),
        "id": v.resident_id(),
        "bank": v.bank_name(),
        "card": v.bank_card(),
        "staff": v.zh_name(),
        "phone": v.cn_phone(),
        "city": v.city_name(),
    }


# --- Chinese commerce, apps and messages -----------------------------------------------


@template("wechat_pay_receipt")
def _wechat_pay_receipt(v: Values) -> Filled:
    tpl = """
    微信支付 · 转账详情
    -[[amount]]
    当前状态        对方已收款
    收款方          [[payee]]
    转账说明        [[memo]]
    转账时间        [[date]] [[time]]:[[sec]]
    收款时间        [[date]] [[time]]:[[sec2]]
    支付方式        [[bank]]储蓄卡([[last4]])
    转账单号        1000050001[[tx]]
    """
    vals: dict[str, str | Lab] = {
        "amount": v.amount(10, 5000),
        "payee": v.zh_name(),
        "date": v.date_iso(),
        "time": v.time(),
        "sec": f"{v.r.randint(0, 59):02d}",
        "sec2": f"{v.r.randint(0, 59):02d}",
        "bank": v.bank_name(),
        "last4": v.digits(4),
        "tx": v.digits(20),
    }
    if v.chance(0.3):  # a phone number left in the transfer note
        tpl = tpl.replace("[[memo]]", "二手家具 [[memo_phone]] 自提")
        vals["memo_phone"] = v.cn_phone()
    else:
        vals["memo"] = v.pick(["房租", "押金退还", "代购尾款", "聚餐AA", "五月水电费"])
    return tpl, vals


@template("delivery_app_chat")
def _delivery_app_chat(v: Values) -> Filled:
    tpl = """
    [[app]] · 与骑手的对话（订单尾号[[tail]]）
    骑手：您好，我是[[app]]骑手[[rider]]，您的餐已经到小区门口了，门卫不让进，具体是哪里？
    我：[[room]]，放门口就行，谢谢
    骑手：好的。您预留的电话[[phone]]一直打不通，麻烦留意一下
    我：刚才在电梯里没信号，现在可以了
    骑手：已经放到门口了，餐盒有点烫。祝您用餐愉快，方便的话给个五星好评~
    [系统消息] 骑手已送达，本单准时率100%
    """
    return tpl, {
        "app": v.pick(["美团外卖", "饿了么", "盒马"]),
        "tail": v.digits(4),
        "rider": v.zh_name(),
        "room": v.partial_address(),
        "phone": v.cn_phone(),
    }


@template("waybill_label_zh")
def _waybill(v: Values) -> Filled:
    tpl = """
    [[carrier]]    [[service]]    运单号：[[wb]]
    寄件人：[[s]]  [[sph]]
    寄件地址：[[saddr]]
    收件人：[[rcpt]]  [[rph]]
    收件地址：[[raddr]]
    托寄物：[[item]]    件数：1    计费重量：[[kg]]kg
    付款方式：寄付月结    月结卡号：[[acct]]
    签收人：__________    [[date]]
    """
    return tpl, {
        "carrier": v.pick(["顺丰速运", "中通快递", "京东物流", "圆通速递"]),
        "service": v.pick(["标快", "特快", "次日达"]),
        "wb": v.pick(["SF", "ZT", "JDX", "YT"]) + v.digits(13),
        "s": v.zh_name(),
        "sph": v.cn_phone(),
        "saddr": v.zh_address(),
        "rcpt": v.zh_name(),
        "rph": v.masked_cn_phone() if v.chance(0.5) else v.cn_phone(),
        "raddr": v.zh_address(),
        "item": v.pick(["文件", "衣物", "电子产品", "食品（干货）"]),
        "kg": f"{v.r.randint(1, 200) / 10:.1f}",
        "acct": v.digits(10),
        "date": v.date_iso(),
    }


@template("sms_notification_zh")
def _sms_notification(v: Values) -> Filled:
    kind = v.pick(["courier", "clinic", "credit", "property"])
    if kind == "courier":
        tpl = (
            "【丰巢】您的快件已由快递员[[name]]（[[phone]]）投放至[[place]]丰巢柜，"
            "取件码[[code]]，请于24小时内取件。如有疑问请联系快递员。"
        )
        vals = {
            "name": v.zh_name(),
            "phone": v.cn_phone(),
            "place": v.pick(["小区北门", "3号门岗", "菜鸟驿站旁"]),
            "code": v.digits(8),
        }
    elif kind == "clinic":
        tpl = (
            "【[[hosp]]】尊敬的[[name]][[title]]，您已成功预约[[date]] [[time]]的[[dept]]门诊，"
            "就诊人身份证号[[id]]，请提前30分钟到门诊一楼自助机取号。退订回T"
        )
        vals = {
            "hosp": v.city_name() + "市中心医院",
            "name": v.zh_name(),
            "title": v.pick(["先生", "女士"]),
            "date": v.date_zh(),
            "time": v.time(),
            "dept": v.pick(["心内科", "消化内科", "皮肤科", "骨科"]),
            "id": v.resident_id(),
        }
    elif kind == "credit":
        tpl = (
            "【[[bank]]】[[name]][[title]]，您卡号为[[card]]的信用卡本期账单金额[[amount]]元，"
            "最后还款日[[date]]。如已还款请忽略。客服热线95555。"
        )
        vals = {
            "bank": v.bank_name(),
            "name": v.zh_name(),
            "title": v.pick(["先生", "女士"]),
            "card": v.bank_card(),
            "amount": v.amount(),
            "date": v.date_zh(),
        }
    else:
        tpl = (
            "【物业通知】[[addr]]业主您好，您家本月水费[[amount]]元尚未缴纳，"
            "请联系管家[[name]]，电话[[phone]]。"
        )
        vals = {
            "addr": v.partial_address(),
            "amount": v.amount(20, 400),
            "name": v.zh_name(),
            "phone": v.cn_phone(),
        }
    return tpl, vals


@template("real_estate_listing_zh")
def _real_estate_listing(v: Values) -> Filled:
    tpl = """
    【[[tag]]】[[community]] [[rooms]]室[[halls]]厅 [[area]]㎡ 满五唯一 南北通透
    房源编号：FY[[fy]]
    挂牌价：[[price]]万    单价：[[unit]]元/㎡
    楼层：中楼层/共[[floors]]层    装修：精装    电梯：有
    小区地址：[[addr]]
    具体房号：[[room]]（看房前请预约）
    业主：[[owner]][[title]]，电话[[ophone]]，诚心出售，可配合银行按揭。
    置业顾问：[[agent]]  [[aphone]]  [[agency]]
    """
    community = v.pick(["翠湖苑", "阳光花园", "滨江花园", "星河湾", "梧桐苑"])
    b, u = v.r.randint(1, 20), v.r.randint(1, 4)
    floor = v.r.randint(2, 30)
    return tpl, {
        "tag": v.pick(["急售", "笋盘", "业主直售"]),
        "community": community,
        "rooms": str(v.r.randint(1, 4)),
        "halls": str(v.r.randint(1, 2)),
        "area": str(v.r.randint(45, 180)),
        "fy": v.digits(10),
        "price": str(v.r.randint(80, 1200)),
        "unit": f"{v.r.randint(12000, 98000):,}",
        "floors": str(v.r.randint(11, 33)),
        "addr": v.zh_address(v.pick(["full", "city"])),
        "room": Lab(f"{b}栋{u}单元{floor}0{v.r.randint(1, 4)}室", "ADDRESS"),
        "owner": v.zh_name(),
        "title": v.pick(["先生", "女士"]),
        "ophone": v.cn_phone(),
        "agent": v.zh_name(),
        "aphone": v.cn_phone(),
        "agency": v.pick(["链家", "我爱我家", "中原地产", "贝壳找房"]),
    }


@template("bank_transfer_receipt_zh")
def _bank_transfer_receipt(v: Values) -> Filled:
    tpl = """
    [[bank]] 网上银行电子回单
    回单编号：[[no]]        交易日期：[[date]]
    付款人户名：[[payer]]
    付款人账号：[[pcard]]
    付款人开户行：[[bank]][[city]]分行
    收款人户名：[[payee]]
    收款人账号：[[rcard]]
    收款人开户行：[[bank2]][[city2]]分行营业部
    金额（小写）：¥[[amount]]
    用途：[[purpose]]
    交易流水号：[[flow]]
    本回单仅作为客户记账凭证，重复打印无效。
    """
    return tpl, {
        "bank": v.bank_name(),
        "no": v.digits(16),
        "date": v.date_iso(),
        "payer": v.zh_name(),
        "pcard": v.bank_card(),
        "city": v.city_name(),
        "payee": v.zh_name(),
        "rcard": v.bank_card(),
        "bank2": v.bank_name(),
        "city2": v.city_name(),
        "amount": v.amount(100, 200000),
        "purpose": v.pick(["货款", "借款归还", "工资", "房租", "学费"]),
        "flow": v.order_no(20),
    }


@template("invoice_info_zh")
def _invoice_info(v: Values) -> Filled:
    tpl = """
    开票信息（请财务核对）
    发票抬头：[[company]]
    纳税人识别号：91[[tax]]
    地址、电话：[[addr]] 0[[area]]-[[tel]]
    开户行及账号：[[bank]][[city]]分行 [[acct]]
    收票人：[[name]]  [[phone]]
    收票邮箱：[[email]]
    备注：订单号[[order]]，请开具增值税普通发票。
    """
    return tpl, {
        "company": v.company_zh(),
        "tax": v.digits(6) + v.pick(["MA2", "MA1", "MA5"]) + v.digits(6) + v.pick("ABCDKLX"),
        "addr": v.zh_address(v.pick(["full", "city", "road"])),
        "area": v.pick(["571", "21", "10", "755", "25"]),
        "tel": v.digits(8),
        "bank": v.bank_name(),
        "city": v.city_name(),
        "acct": v.digits(4) + " " + v.digits(4) + " " + v.digits(4) + " " + v.digits(3),
        "name": v.zh_name(),
        "phone": v.cn_phone(),
        "email": v.email(corp=True),
        "order": v.order_no(18),
    }


@template("train_booking_zh")
def _train_booking(v: Values) -> Filled:
    n = v.r.randint(1, 3)
    rows = "\n".join(
        f"    乘车人{i + 1}：[[p{i}]]  证件：居民身份证 [[id{i}]]  [[car]]车[[s{i}]]号"
        for i in range(n)
    )
    tpl = (
        """
    【铁路12306】购票成功
    订单号：E[[order]]
    [[date]]  [[train]]次  [[from]]站 [[dep]]开 → [[to]]站
    """
        + rows
        + """
    联系人：[[contact]]  手机：[[phone]]
    请乘车人持购票时所使用的有效身份证件原件进站乘车。
    """
    )
    vals: dict[str, str | Lab] = {
        "order": v.digits(9),
        "date": v.date_zh(),
        "train": v.pick("GDK") + str(v.r.randint(1, 2999)),
        "from": v.pick(["北京南", "上海虹桥", "杭州东", "广州南", "成都东"]),
        "dep": v.time(),
        "to": v.pick(["南京南", "武汉", "西安北", "深圳北", "长沙南"]),
        "car": f"{v.r.randint(1, 16):02d}",
        "contact": v.zh_name(),
        "phone": v.cn_phone(),
    }
    for i in range(n):
        vals[f"p{i}"] = v.zh_name()
        vals[f"id{i}"] = v.resident_id()
        vals[f"s{i}"] = f"{v.r.randint(1, 18):02d}{v.pick('ABCDF')}"
    return tpl, vals


@template("group_chat_zh")
def _group_chat(v: Values) -> Filled:
    tpl = """
    【[[community]]业主群】
    [[a]]（物业客服） 09:12
    各位业主早上好，明天上午9点至下午3点二次供水设备检修，届时停水，请提前储水。
    [[b]] 09:15
    收到，请问地下车库的充电桩也停电吗？
    [[c]] 09:21
    我家[[room]]卫生间顶上漏水好几天了，@[[a]] 能不能安排师傅上门看看？我电话[[phone]]
    [[a]]（物业客服） 09:23
    好的[[c]]，已经登记，下午维修师傅[[d]]会联系您。
    [[b]] 09:30
    周末小区门口那个快递柜是不是坏了，取件码一直提示错误
    """
    return tpl, {
        "community": v.pick(["翠湖苑", "阳光花园", "幸福里", "梧桐苑", "星河湾"]),
        "a": v.zh_name(),
        "b": v.zh_name(),
        "c": v.zh_name(),
        "d": v.zh_name(),
        "room": v.partial_address(),
        "phone": v.cn_phone(),
    }


@template("property_notice_zh")
def _property_notice(v: Values) -> Filled:
    tpl = """
    关于[[community]]电梯更新改造的通知
    尊敬的各位业主：
    根据市场监督管理部门的检验意见，本小区[[blocks]]号楼电梯将于[[date]]起进行更新改造，
    工期约[[days]]天。施工期间请走楼梯，行动不便的业主请提前登记，物业将安排人员协助。
    因施工造成的不便，敬请谅解。许多业主关心的费用问题，全部由专项维修资金列支。
    联系人：管家[[name]]  电话：[[phone]]  邮箱：[[email]]
    [[company]]物业服务中心
    [[date2]]
    """
    return tpl, {
        "community": v.pick(["翠湖苑", "阳光花园", "滨江花园", "金桥新村", "紫荆公寓"]),
        "blocks": v.pick(["1、2", "3", "5、6", "7至9"]),
        "date": v.date_zh(),
        "days": str(v.r.randint(20, 60)),
        "name": v.zh_name(),
        "phone": v.cn_phone(),
        "email": v.email(corp=True),
        "company": v.city_name() + v.pick(["万科", "绿城", "保利", "碧桂园"]),
        "date2": v.date_zh(),
    }


# --- Chinese medical ---------------------------------------------------------------------


@template("pharmacy_prescription_zh")
def _prescription(v: Values) -> Filled:
    tpl = """
    [[hospital]]  处 方 笺        普通处方
    门诊号：[[mz]]    科别：[[dept]]    开具日期：[[date]]
    姓名：[[patient]]    性别：[[sex]]    年龄：[[age]]岁
    身份证号：[[id]]
    住址/电话：[[addr]] / [[phone]]
    临床诊断：[[dx]]
    Rp.
      [[drug1]]  ×[[q1]]盒
      用法：每日[[t1]]次，每次1片，口服
      [[drug2]]  ×[[q2]]盒
      用法：必要时服用
    医师：[[doctor]]    审核药师：[[pharm]]    调配/核对：[[pharm2]]
    药品金额：[[amount]]元
    """
    return tpl, {
        "hospital": v.city_name() + v.pick(["市第一人民医院", "中医院", "社区卫生服务中心"]),
        "mz": v.digits(10),
        "dept": v.pick(["内科", "呼吸内科", "心内科", "全科"]),
        "date": v.date_iso(),
        "patient": v.zh_name(),
        "sex": v.sex_zh(),
        "age": str(v.r.randint(3, 90)),
        "id": v.resident_id(),
        "addr": v.zh_address(),
        "phone": v.cn_phone(),
        "dx": v.pick(["急性上呼吸道感染", "原发性高血压", "2型糖尿病", "慢性胃炎"]),
        "drug1": v.pick(["阿莫西林胶囊 0.25g×24粒", "苯磺酸氨氯地平片 5mg×7片", "二甲双胍片 0.5g"]),
        "q1": str(v.r.randint(1, 4)),
        "t1": str(v.r.randint(1, 3)),
        "drug2": v.pick(["布洛芬缓释胶囊 0.3g×20粒", "奥美拉唑肠溶胶囊 20mg×14粒"]),
        "q2": str(v.r.randint(1, 3)),
        "doctor": v.zh_name(),
        "pharm": v.zh_name(),
        "pharm2": v.zh_name(),
        "amount": v.amount(10, 600),
    }


@template("medical_referral_zh")
def _medical_referral(v: Values) -> Filled:
    tpl = """
    双向转诊（转出）单
    患者姓名：[[patient]]  性别：[[sex]]  年龄：[[age]]  医保卡号：[[yb]]
    身份证号码：[[id]]
    家庭住址：[[addr]]
    联系电话：[[phone]]（本人） [[phone2]]（家属[[family]]）
    因病情需要，需转入[[to]]就诊。
    初步印象：[[dx]]
    主要既往史：高血压病史十年，规律服药。
    治疗经过：予以吸氧、心电监护，症状缓解不明显。
    转出单位：[[from]]社区卫生服务中心
    转诊医生（签字）：[[doctor]]    联系电话：[[dphone]]
    [[date]]
    """
    return tpl, {
        "patient": v.zh_name(),
        "sex": v.sex_zh(),
        "age": str(v.r.randint(40, 92)),
        "yb": v.digits(10),
        "id": v.resident_id(1935, 1985),
        "addr": v.zh_address(),
        "phone": v.cn_phone(),
        "phone2": v.cn_phone(),
        "family": v.zh_name(),
        "to": v.city_name() + v.pick(["大学附属第一医院", "市人民医院", "市中心医院"]),
        "dx": v.pick(["不稳定型心绞痛", "脑梗死（待排）", "社区获得性肺炎"]),
        "from": v.pick(["湖滨街道", "城东", "西溪", "龙华", "双井"]),
        "doctor": v.zh_name(),
        "dphone": v.cn_phone(),
        "date": v.date_zh(),
    }


# --- Chinese HR ---------------------------------------------------------------------------


@template("resume_zh")
def _resume(v: Values) -> Filled:
    tpl = """
    个人简历
    姓    名：[[name]]          性    别：[[sex]]
    出生年月：[[birth]]          政治面貌：群众
    手    机：[[phone]]
    邮    箱：[[email]]
    现居住址：[[addr]]
    求职意向：Java开发工程师 / 期望城市：[[city]]
    教育背景
    [[y1]].09-[[y2]].06  [[uni]]  计算机科学与技术  本科
    工作经历
    [[y2]].07-至今  [[company]]  后端开发
    - 负责订单中心重构，使用 Spring Boot 3.2 与 Kafka，接口耗时下降40%
    - 主导支付对账模块，日处理流水超过200万笔
    证明人：[[ref]]（原部门经理） [[refphone]]
    """
    y1 = v.r.randint(2008, 2019)
    return tpl, {
        "name": v.zh_name(),
        "sex": v.sex_zh(),
        "birth": f"{y1 - 18}.{v.r.randint(1, 12):02d}",
        "phone": v.cn_phone(),
        "email": v.email(corp=False),
        "addr": v.zh_address(),
        "city": v.pick(["杭州", "上海", "深圳", "成都"]),
        "y1": str(y1),
        "y2": str(y1 + 4),
        "uni": v.pick(["浙江大学", "华中科技大学", "四川大学", "南京邮电大学", "西安电子科技大学"]),
        "company": v.company_zh(),
        "ref": v.zh_name(),
        "refphone": v.cn_phone(),
    }


@template("meeting_minutes_zh")
def _meeting_minutes(v: Values) -> Filled:
    tpl = """
    项目周会纪要
    时间：[[date]] 14:00-15:00    地点：线上（腾讯会议）
    参会人：[[a]]、[[b]]、[[c]]、[[d]]
    主持人：[[a]]    记录人：[[b]]
    一、上周进展
    1. 支付网关 v[[ver]] 已完成灰度发布，错误率低于0.1%。
    2. 数据中台迁移完成70%，剩余表结构由[[c]]负责梳理。
    二、本周计划
    1. [[d]]牵头完成等保测评材料，周三前提交。
    2. 客户现场问题统一找[[c]]对接，手机[[phone]]，邮箱[[email]]。
    三、风险
    供应商交付可能延期，需[[a]]马上与对方负责人沟通。
    """
    return tpl, {
        "date": v.date_zh(),
        "a": v.zh_name(),
        "b": v.zh_name(),
        "c": v.zh_name(),
        "d": v.zh_name(),
        "ver": f"{v.r.randint(1, 4)}.{v.r.randint(0, 20)}.{v.r.randint(0, 9)}",
        "phone": v.cn_phone(),
        "email": v.email(corp=True),
    }


@template("volunteer_tsv_zh")
def _volunteer_tsv(v: Values) -> Filled:
    n = v.r.randint(3, 6)
    lines = ["序号\t姓名\t性别\t手机号码\t身份证号\t服务岗位"]
    vals: dict[str, str | Lab] = {}
    for i in range(n):
        lines.append(f"{i + 1}\t[[n{i}]]\t[[s{i}]]\t[[p{i}]]\t[[id{i}]]\t[[j{i}]]")
        vals[f"n{i}"] = v.zh_name()
        vals[f"s{i}"] = v.sex_zh()
        vals[f"p{i}"] = v.cn_phone()
        vals[f"id{i}"] = v.resident_id(1960, 2006)
        vals[f"j{i}"] = v.pick(["引导", "医疗保障", "物资发放", "秩序维护", "翻译"])
    head = "[[event]]志愿者报名汇总（截至[[date]]）\n"
    vals["event"] = v.city_name() + v.pick(["马拉松", "国际车展", "社区义诊", "图书节"])
    vals["date"] = v.date_zh()
    return head + "\n".join(lines), vals


# --- English documents --------------------------------------------------------------------


@template("cover_letter_en")
def _cover_letter(v: Values) -> Filled:
    tpl = """
    [[name]]
    [[addr]]
    [[phone]] | [[email]]

    [[date]]

    Hiring Committee
    [[company]]

    Dear Hiring Committee,

    I am writing to apply for the Senior Data Analyst position posted on LinkedIn. Over the
    past five years at [[prev]], I built forecasting pipelines in Python and SQL and moved our
    reporting from Excel macros to Tableau dashboards used by every regional office.
    While working under [[title]][[mentor]], I led the migration of our warehouse to Snowflake,
    cutting nightly load times from six hours to forty minutes.

    I would welcome the chance to discuss how I can contribute. [[title2]][[ref]] has kindly
    agreed to serve as a reference and can be reached at [[refphone]].

    Sincerely,
    [[name]]
    """
    name = v.en_name()
    return tpl, {
        "name": name,
        "addr": v.us_address(),
        "phone": v.us_phone(),
        "email": v.email(name.text, corp=False),
        "date": v.date_en(),
        "company": v.pick(["Initech Analytics", "Globex Corporation", "Northwind Traders"]),
        "prev": v.pick(["Contoso Health", "Fabrikam Logistics", "Tailspin Toys"]),
        "title": v.pick(["Dr. ", "Prof. ", ""]),
        "mentor": v.en_name(),
        "title2": v.pick(["Ms. ", "Mr. ", "Dr. "]),
        "ref": v.en_name(),
        "refphone": v.us_phone(),
    }


@template("us_lease_agreement")
def _us_lease(v: Values) -> Filled:
    tpl = """
    RESIDENTIAL LEASE AGREEMENT

    This Lease Agreement ("Lease") is entered into on [[d1]] by and between [[landlord]]
    ("Landlord") and [[tenant]] ("Tenant").

    1. PREMISES. Landlord leases to Tenant the residential dwelling located at [[premises]]
    (the "Premises"), together with one assigned parking space.
    2. TERM. The term begins on [[d2]] and ends on [[d3]], unless renewed in writing.
    3. RENT. Tenant shall pay $[[rent]] per month, due on the first day of each month, by
    check payable to [[landlord]] or by ACH transfer. A late fee of $75 applies after the
    fifth day.
    4. SECURITY DEPOSIT. Tenant has paid a deposit of $[[deposit]].
    5. NOTICES. Notices to Landlord shall be sent to [[laddr]], telephone [[lphone]],
    email [[lemail]]. Tenant's emergency contact: [[contact]], [[cphone]].

    LANDLORD: ______________________  [[landlord]]
    TENANT:   ______________________  [[tenant]]
    """
    landlord = v.en_name()
    return tpl, {
        "d1": v.date_en(),
        "landlord": landlord,
        "tenant": v.en_name(),
        "premises": v.us_address(),
        "d2": v.date_en(),
        "d3": v.date_en(),
        "rent": f"{v.r.randint(9, 45) * 100:,}",
        "deposit": f"{v.r.randint(9, 45) * 100:,}",
        "laddr": v.us_address(),
        "lphone": v.us_phone(),
        "lemail": v.email(landlord.text),
        "contact": v.en_name(),
        "cphone": v.us_phone(),
    }


@template("hotel_review_en")
def _hotel_review_en(v: Values) -> Filled:
    tpl = """
    [[stars]]  "[[headline]]"
    Stayed [[nights]] nights in [[month]] for a conference. Check-in was smooth thanks to
    [[staff1]] at the front desk, who upgraded us to a river-view room without us asking.
    The concierge, [[staff2]], booked a table at a dumpling place near the Bund and even
    wrote the address in Chinese for the taxi driver. Breakfast was great (try the congee).
    Only complaint: the Wi-Fi dropped every evening and the gym closes at 10 PM.
    Special thanks to housekeeping supervisor [[title]][[staff3]]!
    Date of stay: [[month]] [[year]] | Trip type: Business
    """
    return tpl, {
        "stars": v.pick(["★★★★★", "★★★★☆", "5/5", "4 out of 5"]),
        "headline": v.pick(["Great stay near the Bund", "Friendly staff", "Would come back"]),
        "nights": v.pick(["two", "three", "four"]),
        "month": v.pick(["March", "April", "October", "November"]),
        "staff1": v.pinyin_name() if v.chance(0.6) else v.en_name(),
        "staff2": v.pinyin_name() if v.chance(0.5) else v.en_name(),
        "title": v.pick(["Ms. ", "Mr. ", ""]),
        "staff3": v.pinyin_name() if v.chance(0.5) else v.en_name(),
        "year": str(v.r.randint(2019, 2025)),
    }


@template("hotel_review_zh")
def _hotel_review_zh(v: Values) -> Filled:
    tpl = """
    [[score]]分 | 商务出行 | [[date]]入住
    酒店位置很方便，离地铁站步行五分钟。前台[[a]]非常热情，帮我们免费升级了江景房，
    还提前准备了儿童拖鞋。第二天早上赶飞机，大堂经理[[b]]帮忙叫车并打包了早餐，
    真的很贴心！唯一不足是隔音一般，晚上能听到走廊的声音。
    特别感谢客房部的[[c]][[ctitle]]，把孩子落下的玩具收好并快递寄回来了。下次还会再来。
    """
    return tpl, {
        "score": f"{v.r.randint(40, 50) / 10:.1f}",
        "date": v.date_zh(),
        "a": v.zh_name(),
        "b": v.zh_name(),
        "c": v.zh_name(),
        "ctitle": v.pick(["阿姨", "女士", "经理", "师傅"]),
    }


@template("support_ticket_en")
def _support_ticket(v: Values) -> Filled:
    tpl = """
    Ticket #[[ticket]] | Status: Open | Priority: High | Channel: Email
    Customer: [[cust]]
    Contact: [[email]] / [[phone]]
    Billing address: [[addr]]
    Subject: Charged twice for order A-[[order]]
    Description: Customer reports that the card ending in [[last4]] was charged twice on
    [[date]]. In the reply the customer pasted the full card number [[card]] "so you can
    find it faster" (agent note: redact before escalating). Refund of $[[amount]] requested.
    Assigned to: [[agent]] (Tier 2)
    """
    cust = v.en_name()
    return tpl, {
        "ticket": v.digits(6),
        "cust": cust,
        "email": v.email(cust.text),
        "phone": v.us_phone(),
        "addr": v.us_address(),
        "order": v.digits(5),
        "last4": v.digits(4),
        "date": v.date_us(),
        "card": v.bank_card(),
        "amount": v.amount(10, 900),
        "agent": v.en_name(),
    }


@template("us_incident_report_en")
def _us_incident(v: Values) -> Filled:
    tpl = """
    [[dept]] POLICE DEPARTMENT - INCIDENT REPORT
    Case No.: [[case]]        Date/Time Reported: [[date]] [[time]]
    Reporting Officer: Ofc. [[officer]], Badge [[badge]]
    Location of Incident: [[loc]]
    Complainant: [[comp]], DOB [[dob]], Phone [[phone]]
    Narrative: Complainant stated that at approximately [[time2]] an unknown male wearing a
    gray hoodie took a package from the porch. Complainant's neighbor, [[witness]], observed a
    white sedan leaving northbound. The witness can be reached at [[wphone]].
    Property: one package (Amazon), est. value $[[amount]].
    Status: Open - referred to Investigations.
    """
    return tpl, {
        "dept": v.pick(["SPRINGFIELD", "RIVERSIDE", "FAIRVIEW", "MADISON"]),
        "case": f"{v.r.randint(19, 25)}-{v.digits(6)}",
        "date": v.date_us(),
        "time": v.time(),
        "officer": v.en_name(),
        "badge": v.digits(4),
        "loc": v.us_address(),
        "comp": v.en_name(),
        "dob": f"{v.r.randint(1, 12):02d}/{v.r.randint(1, 28):02d}/{v.r.randint(1950, 2003)}",
        "phone": v.us_phone(),
        "time2": v.time(),
        "witness": v.en_name(),
        "wphone": v.us_phone(),
        "amount": str(v.r.randint(20, 900)),
    }


@template("hr_onboarding_en")
def _hr_onboarding(v: Values) -> Filled:
    tpl = """
    NEW HIRE RECORD - CONFIDENTIAL
    Employee: [[name]]          Employee ID: E-[[eid]]
    Start date: [[date]]        Department: [[dept]]
    Home address: [[addr]]
    Personal email: [[email]]
    Mobile: [[phone]]
    SSN: ***-**-[[ssn4]] (on file with Payroll)
    Direct deposit: debit card [[card]]
    Emergency contact: [[ec]] ([[rel]]), [[ecphone]]
    Manager: [[mgr]]
    """
    name = v.en_name()
    return tpl, {
        "name": name,
        "eid": v.digits(5),
        "date": v.date_us(),
        "dept": v.pick(["Finance", "Engineering", "Customer Success", "Legal"]),
        "addr": v.us_address(),
        "email": v.email(name.text, corp=False),
        "phone": v.us_phone(),
        "ssn4": v.digits(4),
        "card": v.bank_card(),
        "ec": v.en_name(),
        "rel": v.pick(["spouse", "mother", "brother", "partner"]),
        "ecphone": v.us_phone(),
        "mgr": v.en_name(),
    }


@template("appointment_sms_en")
def _appointment_sms(v: Values) -> Filled:
    tpl = (
        "[[clinic]]: Hi [[name]], this is a reminder of your appointment with [[title]][[doc]] on "
        "[[day]] at [[time]] at [[addr]]. Reply C to confirm or call [[phone]] to reschedule. "
        "Msg&data rates may apply."
    )
    return tpl, {
        "clinic": v.pick(["Riverside Dental", "Oakwood Pediatrics", "Summit Eye Care"]),
        "name": v.en_name(),
        "title": v.pick(["Dr. ", "Dr. ", "Nurse Practitioner "]),
        "doc": v.en_name(),
        "day": v.pick(["Mon, Jun 3", "Tue, Jun 4", "Thu, Sep 12", "Fri, Nov 8"]),
        "time": v.pick(["9:15 AM", "10:30 AM", "2:45 PM", "4:00 PM"]),
        "addr": v.us_address(),
        "phone": v.us_phone(),
    }


@template("form_stacked_en")
def _form_stacked_en(v: Values) -> Filled:
    tpl = """
    PATIENT INTAKE FORM
    Full legal name
    [[name]]
    Date of birth
    [[dob]]
    Mailing address
    [[addr]]
    Best phone number
    [[phone]]
    Email
    [[email]]
    Preferred pharmacy
    [[pharmacy]]
    Insurance member ID
    [[member]]
    Emergency contact name
    [[ec]]
    """
    name = v.en_name()
    return tpl, {
        "name": name,
        "dob": v.date_us(),
        "addr": v.us_address(),
        "phone": v.us_phone(),
        "email": v.email(name.text),
        "pharmacy": v.pick(["CVS Pharmacy #4471", "Walgreens", "Rite Aid"]),
        "member": v.pick("WXYZ") + v.digits(9),
        "ec": v.en_name(),
    }


# --- mixed and bilingual ------------------------------------------------------------------


@template("email_thread_mixed")
def _email_thread(v: Values) -> Filled:
    tpl = """
    From: [[cn]] <[[cnmail]]>
    To: [[us]] <[[usmail]]>
    Subject: Re: 样品寄送地址 / sample shipping address

    Hi,

    样品请寄到：[[addr]]，收件人[[rcpt]]，电话[[rphone]]。
    Customs may need the recipient's ID number: [[rid]].
    Thanks!
    [[cn]]

    > On [[date]], [[us]] <[[usmail]]> wrote:
    > Could you confirm the shipping address for the samples? Our courier (FedEx) also
    > needs a local phone number. If anything is unclear you can call me at [[usphone]].
    >
    > Best regards,
    > [[us]]
    > Sourcing Manager, [[company]]
    """
    cn = v.pinyin_name()
    us = v.en_name()
    return tpl, {
        "cn": cn,
        "cnmail": v.email(cn.text, corp=True),
        "us": us,
        "usmail": v.email(us.text, corp=True),
        "addr": v.zh_address(),
        "rcpt": v.zh_name(),
        "rphone": v.cn_phone(),
        "rid": v.resident_id(),
        "date": v.date_en(),
        "usphone": v.us_phone(),
        "company": v.pick(["Acme Robotics", "Northwind Traders", "Globex Corporation"]),
    }


@template("business_card_bilingual")
def _business_card(v: Values) -> Filled:
    tpl = """
    [[company]]
    [[company_en]]
    [[name]]  [[pinyin]]
    [[job]] | [[job_en]]
    M: [[phone]]
    E: [[email]]
    A: [[addr]]
       [[addr_en]]
    WeChat: 扫码添加
    """
    name, pinyin = v.zh_name_with_pinyin()
    addr, addr_en = v.zh_address_with_english()
    phone = v.cn_phone()
    if not phone.text.startswith("+86"):
        phone = Lab("+86 " + phone.text, phone.type)
    return tpl, {
        "company": v.pick(["星河数据科技有限公司", "兰亭律师事务所", "恒远精密机械有限公司"]),
        "company_en": v.pick(["Xinghe Data Technology Co., Ltd.", "Hengyuan Precision Co., Ltd."]),
        "name": name,
        "pinyin": pinyin,
        "job": v.pick(["销售总监", "合伙人", "技术经理", "市场部主管"]),
        "job_en": v.pick(["Sales Director", "Partner", "Engineering Manager", "Marketing Lead"]),
        "phone": phone,
        "email": v.email(pinyin.text, corp=True),
        "addr": addr,
        "addr_en": addr_en,
    }


@template("conference_attendees_csv")
def _conference_csv(v: Values) -> Filled:
    n = v.r.randint(3, 7)
    lines = ["id,name,organization,email,phone,city"]
    vals: dict[str, str | Lab] = {}
    for i in range(n):
        kind = v.r.random()
        if kind < 0.35:
            name = v.pinyin_name()
            phone = v.cn_phone()
            city = v.pick(["Beijing", "Shanghai", "Shenzhen", "Hangzhou"])
        elif kind < 0.55:
            name = v.zh_name()
            phone = v.cn_phone()
            city = v.pick(["北京", "上海", "广州", "成都"])
        else:
            name = v.en_name()
            phone = v.us_phone()
            city = v.pick(["San Francisco", "Boston", "Austin", "Seattle"])
        org = v.pick(["Tsinghua University", "Acme Robotics", "Zhejiang University", "Globex"])
        lines.append(f"{i + 101},[[n{i}]],{org},[[e{i}]],[[p{i}]],{city}")
        vals[f"n{i}"] = name
        vals[f"e{i}"] = v.email(name.text, corp=True)
        vals[f"p{i}"] = phone
    return "\n".join(lines), vals


@template("markdown_employee_table")
def _markdown_table(v: Values) -> Filled:
    n = v.r.randint(3, 6)
    lines = [
        "## 研发部通讯录（[[quarter]]）",
        "",
        "| 工号 | 姓名 | 职位 | 手机 | 邮箱 |",
        "|------|------|------|------|------|",
    ]
    vals: dict[str, str | Lab] = {"quarter": f"{v.r.randint(2021, 2025)}Q{v.r.randint(1, 4)}"}
    for i in range(n):
        job = v.pick(["后端工程师", "前端工程师", "测试经理", "产品经理", "运维工程师", "架构师"])
        lines.append(f"| E{v.digits(4)} | [[n{i}]] | {job} | [[p{i}]] | [[e{i}]] |")
        vals[f"n{i}"] = v.zh_name()
        vals[f"p{i}"] = v.cn_phone()
        vals[f"e{i}"] = v.email(corp=True)
    lines += ["", "> 如有变更请联系 HR 更新，勿外传。"]
    return "\n".join(lines), vals


@template("yaml_owner_config")
def _yaml_config(v: Values) -> Filled:
    tpl = """
    # service catalogue entry
    service: [[svc]]
    version: [[ver]]
    tier: [[tier]]
    owner:
      name: [[owner]]
      email: [[oemail]]
      phone: "[[ophone]]"
    oncall:
      - name: [[oncall]]
        phone: "[[oncallphone]]"
    replicas: [[replicas]]
    region: [[region]]
    dashboards:
      - https://grafana.internal/d/[[dash]]
    """
    owner = v.pinyin_name() if v.chance(0.4) else v.zh_name()
    if v.chance(0.5):
        oncall, oncallphone = v.en_name(), v.us_phone()
    else:
        oncall, oncallphone = v.zh_name(), v.cn_phone()
    return tpl, {
        "svc": v.pick(["payment-gateway", "order-center", "risk-engine", "search-api"]),
        "ver": f"{v.r.randint(0, 5)}.{v.r.randint(0, 30)}.{v.r.randint(0, 9)}",
        "tier": v.pick(["critical", "standard"]),
        "owner": owner,
        "oemail": v.email(owner.text, corp=True),
        "ophone": v.cn_phone(),
        "oncall": oncall,
        "oncallphone": oncallphone,
        "replicas": str(v.r.randint(2, 12)),
        "region": v.pick(["cn-hangzhou", "cn-shanghai", "us-west-2", "ap-southeast-1"]),
        "dash": v.digits(6),
    }


@template("app_log_lines")
def _app_log(v: Values) -> Filled:
    tpl = """
    [[date]]T08:12:44.123Z INFO  [auth-service] login ok user=[[email]] mfa=totp took=83ms
    [[date]]T08:12:45.001Z WARN  [sms-gateway] send failed phone=[[phone]] code=E429 retry=2
    [[date]]T08:12:47.310Z INFO  [kyc] verify user="[[name]]" id_no=[[id]] result=PASS
    [[date]]T08:12:49.877Z ERROR [billing] charge declined card=[[card]] amount=[[amount]]
    [[date]]T08:12:50.002Z INFO  [billing] retry scheduled job=rt-[[job]] attempt=1/3
    """
    return tpl, {
        "date": v.date_iso(),
        "email": v.email(),
        "phone": v.cn_phone(),
        "name": v.zh_name() if v.chance(0.6) else v.pinyin_name(),
        "id": v.resident_id(),
        "card": v.bank_card(),
        "amount": v.amount(1, 3000),
        "job": v.digits(8),
    }


@template("form_stacked_zh")
def _form_stacked_zh(v: Values) -> Filled:
    tpl = """
    客户信息确认表（请核对后签字）
    客户姓名
    [[name]]
    手机号码
    [[phone]]
    证件号码
    [[id]]
    通讯地址
    [[addr]]
    邮政编码
    [[zip]]
    电子邮箱
    [[email]]
    还款账户
    [[card]]
    客户经理
    [[mgr]]
    """
    return tpl, {
        "name": v.zh_name(),
        "phone": v.cn_phone(),
        "id": v.resident_id(),
        "addr": v.zh_address(),
        "zip": v.digits(6),
        "email": v.email(),
        "card": v.bank_card(),
        "mgr": v.zh_name(),
    }


@template("json_api_payload")
def _json_payload(v: Values) -> Filled:
    tpl = """
    POST /api/v2/orders HTTP/1.1
    Content-Type: application/json

    {
      "orderId": "[[order]]",
      "channel": "mini-program",
      "buyer": {"name": "[[name]]", "mobile": "[[phone]]", "idCard": "[[id]]"},
      "shipTo": {"contact": "[[rcpt]]", "address": "[[addr]]", "zip": "[[zip]]"},
      "payment": {"method": "card", "cardNo": "[[card]]", "amount": [[amount]]},
      "coupon": "SUMMER[[coupon]]"
    }
    """
    return tpl, {
        "order": v.order_no(19),
        "name": v.zh_name(),
        "phone": v.cn_phone(),
        "id": v.resident_id(),
        "rcpt": v.zh_name(),
        "addr": v.zh_address(),
        "zip": v.digits(6),
        "card": v.bank_card(),
        "amount": v.amount(1, 3000).replace(",", ""),
        "coupon": str(v.r.randint(10, 99)),
    }


@template("git_commit_trailer")
def _git_commit(v: Values) -> Filled:
    tpl = """
    commit [[sha]]
    Author: [[author]] <[[amail]]>
    Date:   [[day]] [[time]]:31 2024 +0800

        fix(billing): round amounts before tax calculation (#[[pr]])

        Amounts were rounded after tax, which left one-cent differences in the
        monthly statements. Bumps decimal-utils to [[ver]].

        Reported-by: [[reporter]] <[[rmail]]>
        Reviewed-by: [[reviewer]] <[[vmail]]>
        Signed-off-by: [[author]] <[[amail]]>
    """
    author = v.pinyin_name()
    reporter = v.en_name()
    reviewer = v.pinyin_name() if v.chance(0.5) else v.en_name()
    return tpl, {
        "sha": "".join(v.pick("0123456789abcdef") for _ in range(40)),
        "author": author,
        "amail": v.email(author.text, corp=True),
        "day": v.pick(["Fri May 17", "Mon Jun 3", "Wed Sep 11"]),
        "time": v.time(),
        "pr": str(v.r.randint(100, 9999)),
        "ver": f"{v.r.randint(1, 3)}.{v.r.randint(0, 12)}.{v.r.randint(0, 9)}",
        "reporter": reporter,
        "rmail": v.email(reporter.text),
        "reviewer": reviewer,
        "vmail": v.email(reviewer.text, corp=True),
    }


@template("python_traceback")
def _traceback(v: Values) -> Filled:
    tpl = """
    Traceback (most recent call last):
      File "/srv/app/billing/tasks.py", line [[l1]], in charge_customer
        result = gateway.charge(card_number=card, amount=amount)
      File "/srv/app/.venv/lib/python3.11/site-packages/paylib/client.py", line [[l2]], in charge
        raise CardDeclined(payload)
    paylib.errors.CardDeclined: {'card': '[[card]]', 'holder': '[[holder]]', 'email': '[[email]]', 'code': 'do_not_honor'}
    """  # noqa: E501
    holder = v.en_name() if v.chance(0.6) else v.pinyin_name()
    return tpl, {
        "l1": str(v.r.randint(20, 400)),
        "l2": str(v.r.randint(100, 900)),
        "card": v.bank_card(),
        "holder": holder,
        "email": v.email(holder.text),
    }


@template("sql_insert_dump")
def _sql_insert(v: Values) -> Filled:
    n = v.r.randint(2, 4)
    rows = []
    vals: dict[str, str | Lab] = {}
    for i in range(n):
        rows.append(f"  ({1000 + i}, '[[n{i}]]', '[[p{i}]]', '[[id{i}]]', '[[e{i}]]', '[[a{i}]]')")
        vals[f"n{i}"] = v.zh_name()
        vals[f"p{i}"] = v.cn_phone()
        vals[f"id{i}"] = v.resident_id()
        vals[f"e{i}"] = v.email()
        vals[f"a{i}"] = v.zh_address()
    head = (
        "-- dump of crm.customers, [[date]]\n"
        "INSERT INTO customers (id, full_name, mobile, id_card, email, address) VALUES\n"
    )
    vals["date"] = v.date_iso()
    return head + ",\n".join(rows) + ";", vals
