"""Hard negatives: texts with no personal data that look as if they might hold some.

Words that begin with a surname character, capitalised words that are not names, place
names on their own, companies and products named after places, version numbers, order,
waybill and invoice numbers. None of them holds a person's name, an address down to the
street, a phone number, an identity number, an e-mail address or a card number.
"""

from __future__ import annotations

import random

SURNAME_WORDS_ZH = [
    "这个王国延续了三百多年，最终因内乱而分裂。",
    "听到项目验收通过的消息，大家都很高兴。",
    "他张开双臂，迎接放学回家的孩子们。",
    "周末我们去郊外爬山吧，天气预报说是晴天。",
    "黄金价格今天又创了历史新高。",
    "会议马上就要开始了，请大家关闭手机铃声。",
    "这种方法在实践中被证明是有效的。",
    "白天气温高达三十五度，夜间降温明显。",
    "金融监管部门发布了新的指导意见。",
    "他退出江湖多年，如今只想安静地种花养鱼。",
    "许多游客一大早就在景区门口排队。",
    "常见问题解答已经更新到帮助中心。",
    "高铁站前广场正在施工，请车辆绕行。",
    "林业部门提醒：森林防火期严禁野外用火。",
    "何时发布新版本目前还没有确定。",
    "余额不足，请及时充值以免影响使用。",
    "于是我们决定把上线时间推迟一周。",
    "朱红色的大门在阳光下格外醒目。",
    "田野里的麦子熟了，一片金黄。",
    "程序运行结束，共处理了1024条记录。",
    "杜绝浪费，从光盘行动做起。",
    "雷达显示前方有强降水云团正在靠近。",
    "毛巾和牙刷请自备，酒店不再主动提供。",
    "夏天到了，注意防暑降温。",
    "钱包里只剩下几张过期的优惠券。",
    "史料记载，这座石桥建于明代。",
    "包括运费在内一共九十八元。",
    "和平与发展仍然是时代的主题。",
    "平安夜的苹果比平时贵了一倍。",
    "牛奶开封后请冷藏保存，三日内饮用完毕。",
    "白云在蓝天上缓缓飘过。",
    "龙井茶以色绿、香郁、味甘、形美著称。",
    "温度传感器的读数比实际偏高两度。",
    "宋体和黑体是最常用的中文字体。",
    "曾经的老厂房如今改造成了文创园区。",
    "车辆限行规定自下周一起实施。",
    "陆续有乘客从登机口进入客舱。",
    "任何人不得擅自进入机房。",
    "叶子变黄了，秋天真的来了。",
    "蓝牙耳机连接失败，请重新配对。",
    "金额请以银行实际到账为准。",
    "毕业典礼将在体育馆举行。",
    "申请材料请于月底前提交至教务处。",
    "文件已经上传到共享盘的归档目录。",
    "简单来说就是先备份，再升级，最后验证。",
    "严格执行垃圾分类，干湿分开投放。",
    "齐心协力，共克时艰。",
    "高级工程师职称评审工作即将启动。",
    "请勿在电梯间张贴小广告。",
    "院子里的李子熟了，酸酸甜甜的。",
    "她去理发店剪了个齐刘海。",
    "商品陈列要整齐，价签要对齐。",
    "河边杨柳依依，游人如织。",
    "本公司郑重声明：从未授权任何第三方代收款项。",
    "别胡说八道，数据都在报表里。",
    "列车徐徐驶出站台。",
    "何必为了这点小事生气呢？",
    "谢谢大家一直以来的支持！",
    "董事会审议通过了年度利润分配方案。",
    "丁香花开了，满院飘香。",
    "请在公共交通工具上佩戴口罩。",
    "钟表维修请到二楼服务台。",
    "小狗听到门铃声就汪汪叫个不停。",
    "天冷了，喝杯姜茶暖暖身子。",
    "本次故障的影响范围仅限于测试环境。",
    "熊猫馆今天闭馆进行例行消毒。",
    "公园里的孔雀开屏了，引来不少游客拍照。",
    "祝您早日康复，按时复查。",
    "顾客至上，服务第一。",
    "万一下雨，活动就改到室内举行。",
    "这一段落的翻译还需要再润色一下。",
    "元宵节要吃汤圆、猜灯谜。",
    "黎明时分，海面上升起一层薄雾。",
    "易碎物品，请小心轻放。",
    "他从小习武，武术功底很扎实。",
    "恭喜乔迁新居，万事顺意。",
    "周一例会改到周二上午十点。",
    "江南的梅雨季节总是潮湿闷热。",
    "石油输出国组织宣布继续减产。",
    "方便面的调料包可以只放一半。",
    "安全第一，预防为主，综合治理。",
    "成功的关键在于坚持和复盘。",
    "欧式装修风格在年轻人中不再流行。",
    "上官方网站下载最新的驱动程序。",
    "东方明珠广播电视塔今晚灯光秀取消。",
    "东方航空的航班因天气原因延误。",
]

PLACES_AND_ORGS_ZH = [
    "北京时间今晚八点，比赛正式开始。",
    "上海证券交易所今日发布了新的交易规则。",
    "杭州亚运会的吉祥物深受孩子们喜爱。",
    "广州塔的观光层今天限流。",
    "深圳湾公园的红树林吸引了大量候鸟。",
    "成都双流国际机场的航班恢复正常。",
    "西湖景区五一期间实行单双号限行。",
    "南京路步行街的夜景很漂亮。",
    "长江三角洲地区一体化发展规划纲要发布。",
    "浙江大学今年的录取分数线有所提高。",
    "天安门广场升旗仪式每天清晨举行。",
    "武汉长江大桥是万里长江第一桥。",
    "重庆火锅讲究麻辣鲜香。",
    "苏州园林甲天下。",
    "青岛啤酒节将于八月中旬开幕。",
    "北京烤鸭要配着薄饼和甜面酱吃。",
    "兰州拉面讲究一清二白三红四绿。",
    "粤港澳大湾区建设取得新进展。",
    "雄安新区的第一批市民服务中心已投入使用。",
    "海南自由贸易港封关运作准备工作有序推进。",
    "黄山风景区今日游客量达到上限。",
    "秦岭是中国南北方重要的地理分界线。",
    "韩国的泡菜和日本的寿司都很有名。",
    "北京字节跳动科技有限公司发布了新的大模型。",
    "深圳市腾讯计算机系统有限公司公布了季度财报。",
    "上海浦东发展银行推出了新的理财产品。",
    "杭州海康威视数字技术股份有限公司参加了安博会。",
    "广州白云山医药集团的王老吉凉茶销量增长。",
    "贵州茅台的股价今天上涨了百分之二。",
    "青岛海尔发布了新款冰箱。",
    "珠海格力电器的空调出口量同比增长。",
    "江苏银行的手机银行将于今晚零点升级维护。",
    "中山公园站的换乘通道暂时关闭。",
    "西安兵马俑博物馆需要提前实名预约。",
    "厦门鼓浪屿上禁止机动车通行。",
    "哈尔滨冰雪大世界今年提前开园。",
]

PRODUCTS_ZH = [
    "iPhone 15 Pro Max 的钛金属边框更轻了。",
    "小米14 Ultra 的影像系统与徕卡联合调校。",
    "华为Mate 60 Pro 支持卫星通话。",
    "周黑鸭的鸭脖偏甜辣口味。",
    "老干妈风味豆豉油制辣椒是留学生的必备品。",
    "大白兔奶糖推出了新的联名款。",
    "比亚迪汉EV 的续航里程有所提升。",
    "特斯拉Model Y 在国内降价了。",
    "微信 8.0.49 版本修复了若干已知问题。",
    "钉钉和飞书都支持在线文档协作。",
    "支付宝的年度账单今天可以查看了。",
    "王老吉和加多宝的官司打了很多年。",
    "海底捞推出了一人食套餐。",
    "云南白药气雾剂适用于跌打损伤。",
    "六神花露水是很多人夏天的回忆。",
]

VERSIONS_ZH = [
    "请将客户端升级到 v3.2.1 以修复该问题。",
    "内核版本 5.15.0-105-generic 存在已知漏洞。",
    "固件版本 V1.0.3.18 Build 20240517 已推送。",
    "本项目依赖 numpy==1.26.4 和 pandas==2.2.2。",
    "API 版本 2023-10-01 将于明年停用。",
    "Python 3.11.7 是当前的推荐版本。",
    "数据库从 MySQL 5.7 迁移到 8.0.36 后性能提升明显。",
    "Ubuntu 22.04.4 LTS 镜像已同步到内网源。",
]

EN = [
    "The weekly sync moved to Monday at 10 AM.",
    "We rewrote the ingest service in Python and Rust.",
    "Apple Inc. reported record services revenue this quarter.",
    "The Grand Canyon is more than a mile deep in places.",
    "The Golden Gate Bridge will be closed to pedestrians tonight.",
    "Microsoft Teams will be unavailable during the maintenance window.",
    "Please upgrade to Google Chrome 124 or later.",
    "Christmas Eve falls on a Tuesday this year.",
    "Amazon Web Services announced a new region in Jakarta.",
    "The Federal Reserve held interest rates steady in June.",
    "Tesla Model Y deliveries rose in April.",
    "Read the Kubernetes documentation before upgrading the cluster.",
    "Johnson & Johnson recalled a batch of sunscreen sprays.",
    "Morgan Stanley raised its price target for the stock.",
    "Wells Fargo branches close early on Friday.",
    "Mount Everest is 8,849 meters tall.",
    "Yellowstone National Park reopened its north entrance.",
    "The New York Stock Exchange will close early on Black Friday.",
    "Silicon Valley startups raised less money in the first quarter.",
    "Version 2.13.0 fixes a memory leak in the tokenizer.",
    "Ubuntu 24.04 LTS will be supported until 2029.",
    "The Lakers beat the Celtics 112-104 on Sunday night.",
    "Open the notebook in Jupyter and run all cells.",
    "Visual Studio Code now supports multiple cursors in the terminal.",
    "Harvard University and MIT announced a joint research program.",
    "Traffic on Fifth Avenue is heavy during the holidays.",
    "Main Street will be closed for the parade on Saturday.",
    "Victoria Harbour was crowded with ferries this morning.",
    "The Amazon River carries more water than any other river.",
    "Ask Siri or Alexa to set a timer for ten minutes.",
    "Thanksgiving dinner starts at six; bring a side dish.",
    "The Mars rover sent back new images of the crater.",
    "Photoshop and Lightroom are part of the Creative Cloud plan.",
    "Boeing delivered fewer 737 jets than expected.",
    "Call 911 in an emergency; this line is not monitored.",
    "The Rolling Stones announced a North American tour.",
    "Toyota Camry remains the best-selling sedan in the segment.",
    "London Heathrow expects record passenger numbers in July.",
    "The Eiffel Tower is repainted every seven years.",
    "Use PostgreSQL 16 with the pgvector extension for embeddings.",
]

MIXED = [
    "北京时间 2024-05-17 20:00，Apple 发布会开始。",
    "我们用 Python 和 Go 重写了网关，延迟降低了 40%。",
    "客服热线 95588 为 7×24 小时服务。",
    "全国统一服务热线：400-820-8820（工作日 9:00-18:00）。",
    "如遇紧急情况请拨打 110、119 或 120。",
    "中国移动客服电话 10086，中国联通 10010。",
    "铁路客服 12306，政务服务便民热线 12345。",
    "您尾号 4821 的银行卡本月消费 23 笔。",
    "验证码 482913，5 分钟内有效，请勿泄露给他人。",
    "Wi-Fi 名称：Office-5G，密码请向前台索取。",
    "会议室 A 的投影仪坏了，请改用 B 会议室。",
    "上证指数收于 3,088.64 点，深证成指收于 9,421.15 点。",
    "ISBN 978-7-115-54608-1 是这本书的国际标准书号。",
    "人民币兑美元中间价报 7.1043。",
    "本周五（5月17日）下午三点进行消防演练。",
    "GitHub Copilot 与 JetBrains IDE 的集成已经可用。",
    "Docker 镜像 nginx:1.25.4-alpine 已推送到私有仓库。",
    "请访问 https://www.python.org/downloads/ 下载安装包。",
    "错误码 E1029：签名校验失败，请检查时间戳。",
    "SKU: MX-2024-BLK-42，库存 318 件。",
]


def _digits(r: random.Random, n: int) -> str:
    return str(r.randint(1, 9)) + "".join(str(r.randrange(10)) for _ in range(n - 1))


def _generated(r: random.Random) -> list[str]:
    out: list[str] = []
    for _ in range(6):
        out.append(f"您的订单号{_digits(r, 19)}已发货，预计{r.randint(1, 5)}天内送达。")
        out.append(
            f"订单号：{_digits(r, 18)}  支付金额：¥{r.randint(10, 999)}.{r.randint(0, 99):02d}"
        )
        out.append(f"请提供订单号 {_digits(r, 16)} 以便客服查询退款进度。")
        out.append(f"运单号 SF{_digits(r, 13)}，当前状态：运输中，已到达转运中心。")
        out.append(f"发票代码 0{_digits(r, 11)}，发票号码 {_digits(r, 8)}。")
        out.append(
            f"Order #{_digits(r, 7)} shipped via UPS, tracking 1Z{_digits(r, 16)}; "
            f"build {r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)} is live."
        )
        out.append(
            f"请将 SDK 升级到 {r.randint(1, 6)}.{r.randint(0, 40)}.{r.randint(0, 20)}，"
            f"旧版 {r.randint(0, 1)}.{r.randint(0, 9)}.x 将于{r.randint(2025, 2027)}年停止维护。"
        )
        out.append(
            f'ts={_digits(r, 13)} level=info msg="request done" status=200 '
            f"latency_ms={r.randint(3, 900)} trace={_digits(r, 16)}"
        )
    return out


def hard_negatives(seed: int) -> list[str]:
    """The hand-written negatives and, drawn from seed, numbered ones, in a seeded order."""
    r = random.Random(seed)
    texts = SURNAME_WORDS_ZH + PLACES_AND_ORGS_ZH + PRODUCTS_ZH + VERSIONS_ZH + EN + MIXED
    texts = texts + _generated(r)
    r.shuffle(texts)
    return texts
