"""Cue words of the dealership's world, grouped into concepts the classifier can lean on.

Character n-grams learn only the words the training data happens to contain. A real owner
writes 坑人 where the data said 乱收费, or "towing" where it said 拖车; both say the same
thing to a service advisor. Each message therefore also gets one feature per concept its
words touch ("#angry", "#emergency", "#price"...), so what the model learns from one cue
carries to the others of its group. Cues match the classifier's feature text: lower case,
no punctuation, every digit a 0 (so no cue holds a digit).
"""
from __future__ import annotations

import re

CONCEPTS: dict[str, tuple[str, ...]] = {
    "book": (
        "订个", "订一下", "约一个", "约个时间", "排期", "什么时候可以", "哪天可以", "今天能", "明天能",
        "有空", "空档", "插个队", "过去一趟", "开过来", "送过来", "去店里", "squeeze me in", "earliest",
        "free tomorrow", "available", "availability", "get my car", "get the car", "have my car", "drop my car",
        "drop the car", "look at my", "check my", "need my",
        "预约", "预越", "预定", "约个", "约一下", "约下", "帮我约", "想约", "我约", "约明天", "约后天", "约周",
        "约下周", "排个", "排一下", "安排", "留个位", "有位", "空位", "位置吗", "名额", "过来做", "过去做",
        "到店", "进店", "开过去", "book", "booking", "appointment", "schedule", "reserve", "slot", "bring my car",
        "bring the car", "come in",
        "约保养", "想预约", "预约一下", "能约", "可以约", "预订", "預約", "預定", "予约", "约时间", "订时间",
        "排得上", "排上", "排到", "book in", "book me", "make an appointment", "fit me in", "bring it in",
        "come by", "swing by", "next available", "get it in",
    ),
    "service": (
        "保养", "宝养", "保氧", "机油", "换油", "机滤", "三滤", "首保", "维修", "修车", "检修", "钣喷", "钣金",
        "喷漆", "补漆", "定位", "动平衡", "年检", "年审", "轮胎", "补胎", "换胎", "电瓶", "刹车片", "空调",
        "加氟", "洗车", "美容", "镀晶", "打蜡", "火花塞", "service", "servicing", "maintenance", "oil", "repair",
        "tyre", "tire", "brake", "alignment", "inspection", "car wash",
        "约保养", "保養", "維修", "機油", "輪胎", "小保养", "大保养", "变速箱油", "刹车油", "防冻液", "冷却液",
        "雨刮", "滤芯", "空滤", "空调滤", "积碳", "节气门", "四轮定位", "蓄电池", "电池", "贴膜", "底盘", "召回",
        "oil change", "tune up", "check up", "checkup", "battery", "wiper", "wipers", "coolant", "filter",
        "spark plug", "spark plugs", "tyres", "tires", "brakes", "pads", "recall",
    ),
    "angry": (
        "黑店", "无语", "过分", "凭什么", "阴阳怪气", "吼", "敷衍", "冤大头", "闹", "交代", "没影", "打不通",
        "不回", "不理", "推卸", "推脱", "忽悠", "宰客", "宰人", "不靠谱", "太离谱", "离谱", "服了", "差到", "垃圾店",
        "维权", "起诉", "告你们", "媒体", "气人", "糟糕", "不专业", "骂", "欺负", "耍", "坑爹", "被坑",
        "白跑", "耽误", "拖了", "一拖再拖", "还没好", "没解决", "不解决", "答应", "承诺", "说好", "scam", "ripped",
        "joke", "bad review", "sloppy", "vanished", "missing", "on hold", "no one answers", "nobody answers",
        "useless", "incompetent", "lied", "cheated", "furious", "angry", "pissed", "disgusting", "worse",
        "still not fixed", "not fixed", "ignored",
        "投诉", "差劲", "太差", "很差", "真差", "差评", "垃圾", "坑", "骗", "破店", "烂", "态度", "不满",
        "失望", "说法", "消协", "乱收费", "乱报价", "贵", "抢钱", "黑心", "责任心", "气死", "恶心",
        "受不了", "什么玩意", "太慢", "等了", "等半天", "没人接", "没人管", "没修好", "又坏", "还是响", "越修越",
        "划伤", "刮花", "弄坏", "弄脏", "丢了", "不见了", "少了", "退钱", "赔偿", "曝光", "excuse",
        "terrible", "worst", "awful", "horrible", "complain", "complaint", "overcharged", "rip off", "ripped off",
        "rude", "unhappy", "disappointed", "scratched", "damaged", "lost my", "refund", "unacceptable",
        "ridiculous", "never again",
        "不满意", "不透明", "糊弄", "扯皮", "踢皮球", "态度恶劣", "爱答不理", "爱理不理", "被宰", "挨宰", "智商税",
        "割韭菜", "霸王条款", "强制消费", "强买强卖", "店大欺客", "投述", "投訴", "举报", "气愤", "愤怒", "生气",
        "火大", "心累", "崩溃", "什么服务", "服务差", "不负责", "甩锅", "推诿", "拖拖拉拉", "磨磨蹭蹭", "放鸽子",
        "没人理", "没人回", "不接电话", "占线", "无人接听", "躲着", "装死", "失联", "返工", "修不好", "修了几次",
        "乱加项目", "小病大修", "过度维修", "过度保养", "以次充好", "副厂件", "不是原厂", "假货", "翻新件", "兜风",
        "私用", "偷开", "乱收", "呵呵", "😡", "🤬", "👎", "ripoff", "overpriced", "overcharge", "overcharging",
        "scammed", "fraud", "shocking", "appalling", "poor service", "bad service", "unprofessional",
        "waste of time", "wasted", "fed up", "sick of", "not happy", "lawyer", "sue", "careless", "dented",
        "grease", "dirty", "stained", "messed up", "botched", "wtf", "bullshit", "liars", "lying", "hidden fees",
        "hidden charges", "still waiting", "been waiting",
    ),
    "emergency": (
        "救急", "急", "抛锚了", "不走了", "困住", "被困", "不敢开", "开不动", "打不着火", "亮故障灯",
        "水温高", "开锅", "漏油", "胎没气", "掉了", "现场", "路边", "应急车道", "双闪", "三角牌", "隧道里",
        "在高速", "高架上", "停在", "趴在", "拖一下", "救一下", "快来", "能来", "派人", "派车", "pulled over",
        "shoulder", "at the scene", "can t move", "cant move", "stopped moving", "stalled", "overheating",
        "smoking", "steam", "dead battery", "battery dead", "flat tyre", "flat tire", "hazard", "roadside",
        "side of the road", "come and", "send someone",
        "救援", "救命", "拖车", "拖走", "抛锚", "爆胎", "扎胎", "没气了", "没电", "搭电", "打不着", "启动不了",
        "着不了", "熄火", "坏在", "趴窝", "撞", "追尾", "刮蹭", "事故", "车祸", "锁车里", "锁在车里", "没油",
        "没油了", "陷", "淹", "冒烟", "着火", "动不了", "开不了", "走不了", "高速上", "路上", "help", "broke down",
        "broken down", "breakdown", "tow", "towing", "flat", "puncture", "jump start", "jumpstart", "won t start",
        "wont start", "stuck", "stranded", "accident", "crash", "crashed", "locked my keys", "out of gas",
        "out of fuel", "ran out",
        "发不动", "掉链子", "熄火了", "陷坑里", "掉沟里", "掉沟", "出不来", "没法开", "卡住了", "坏路上", "坏半路",
        "半路", "服务区", "国道", "山路", "启动不起来", "点不着", "打不起火", "亏电", "馈电", "漏气", "瘪了",
        "刹车失灵", "方向盘锁死", "锁死", "危险", "救缓", "拖車", "拋錨", "救援车", "出事了", "起火", "自燃",
        "见底", "挂不上挡", "挂不了挡", "挂不进挡", "泡水", "涉水", "送油", "借电",
        # apostrophes are spaces in the feature text: won't start, can't move, don't need are written won t start...
        "tow truck", "towed", "jump", "flat battery", "overheated", "overheat", "punctured", "blowout",
        "blew a tyre", "ditch", "locked out", "no fuel", "run out of", "emergency", "urgent", "engine died",
        "on fire", "hazard lights", "highway", "motorway", "freeway", "doesn t start", "not starting",
        "won t turn over", "cant start", "can t start",
    ),
    "after_service": (
        "保养完", "修完", "修好", "做完", "刚修", "刚保养", "提车后", "取车后", "回来后", "提回来", "做了保养",
        "上次修", "上次保养", "你们修", "你们换", "你们给", "since you", "after the service", "after you",
        "came back", "got it back", "picked it up",
        "保养后", "修过", "换完", "刚做完", "取回来", "开回来", "洗完", "贴完膜", "回去后", "回家后", "交车",
        "since the service", "since my service", "after my service", "after servicing", "after the repair",
        "your mechanic", "your technician",
    ),
    "car_fault": (
        "异响", "响", "漏", "冒烟", "故障灯", "抖", "异味", "不制冷", "跑偏", "失灵", "亮灯", "报警", "有问题",
        "坏了", "毛病", "noise", "leak", "smoke", "warning light", "vibrating", "rattle", "grind", "grinding",
        "squeal", "broken", "problem", "issue",
        "故障", "顿挫", "打滑", "不亮", "烧机油", "油耗高", "胎压", "发动机灯", "卡顿", "不正常", "怪声", "噪音",
        "异常", "生锈", "noisy", "noises", "leaking", "leaks", "squeaking", "squeaky", "clunk", "knocking",
        "check engine", "engine light", "shaking", "vibration", "not working", "faulty", "fault", "malfunction",
    ),
    "when": (
        "今天", "明天", "后天", "大后天", "周一", "周二", "周三", "周四", "周五", "周六", "周日", "周末", "下周",
        "这周", "星期", "礼拜", "上午", "下午", "早上", "中午", "晚上", "点", "号", "today", "tomorrow",
        "tonight", "morning", "afternoon", "next week", "monday", "tuesday", "wednesday", "thursday", "friday",
        "pm", "am",
        "礼拜天", "周天", "明早", "明晚", "今晚", "早晨", "傍晚", "月底", "月初", "下个月", "下礼拜", "这两天",
        "尽快", "saturday", "sunday", "weekend", "this week", "noon", "evening", "o clock", "asap",
    ),
    "ask": (
        "吗", "么", "嘛", "多少", "几", "哪", "怎么", "什么", "啥", "是否", "能否", "有没有", "可不可以",
        "how", "what", "when", "where", "which", "is it", "is there", "are you", "do you", "does", "can you",
        "could you",
        "如何", "能不能", "行不行", "是不是", "要不要", "会不会", "需不需要", "有木有", "can i", "should i", "do i",
        "are there", "would you", "will you", "how many", "how long",
    ),
    "hours": (
        "几点到几点", "上班时间", "下班时间", "营业时间", "有人在", "中秋", "元旦", "端午", "清明",
        "放假", "初几", "what time", "until",
        "营业", "开门", "关门", "下班", "上班", "几点", "周末", "节假日", "假期", "休息", "春节", "国庆", "五一",
        "opening", "open", "close", "closing", "hours", "sunday", "saturday", "weekend", "holiday",
        "营業", "營業", "營業時間", "開門", "關門", "幾點", "几点下班", "开到几点", "几点开门", "几点关门", "最晚",
        "最早", "值班", "开不开", "过年", "除夕", "open until", "closing time", "business hours", "weekends",
        "sundays", "saturdays", "opens", "closes",
    ),
    "address": (
        "多远", "地铁", "几号线", "公交", "高铁站", "机场", "附近", "分店", "门店", "哪个区", "导航到",
        "how far", "metro", "station", "street", "nearest", "branch",
        "地址", "在哪", "哪里", "位置", "怎么走", "导航", "路口", "定位发", "店在", "address", "where are you",
        "located", "location", "directions", "how do i get",
        "發個定位", "发个定位", "发下定位", "发一下定位", "定位给我", "高德", "百度地图", "地图", "怎么去",
        "怎么过去", "地點", "哪裡", "where is", "find you", "map", "google maps", "postcode",
    ),
    "phone_number": (
        "联系", "微信号", "怎么联系", "打给", "number to call", "reach you",
        "电话", "联系方式", "号码", "热线", "座机", "手机号", "phone", "number", "call you", "contact",
        "hotline",
        "電話", "聯繫", "聯絡", "號碼", "联络", "微信", "加微信", "vx", "手机", "邮箱", "email", "whatsapp",
        "phone number", "telephone", "tel",
    ),
    "price": (
        "工时费", "怎么算", "多贵", "价目", "报个价", "要花", "免费", "收钱", "几块", "charge",
        "expensive", "free or", "paid",
        "多少钱", "价格", "价钱", "报价", "费用", "收费", "优惠", "便宜", "打折", "几百", "几千", "price",
        "cost", "how much", "quote", "fee", "discount", "cheap",
        "收费标准", "价目表", "报价单", "多少米", "什么价", "啥价", "价位", "花多少", "要多少", "几个钱",
        # 贵不贵 and 贵吗 ask a price: longer, they keep the complaint cue 贵 from firing
        "贵不贵", "贵吗", "要钱", "收不收费",
        # not bare 明细: 不给明细 is a complaint
        "费用明细", "收费明细", "账单", "套餐", "优惠券", "价格表", "價格", "價錢", "多少錢", "費用", "收費",
        "prices", "costs", "pricing", "price list", "charges", "labour", "labor", "estimate", "quotation", "rmb",
        "yuan", "bucks",
    ),
    "interval": (
        "多少公里", "几公里", "一回", "隔多久", "寿命", "能用多久", "how long do", "last",
        "多久", "多长时间", "间隔", "下次", "一次", "周期", "公里保养", "how often", "interval", "every", "due",
        "多久换", "多久做", "几个月", "半年", "每隔", "多久一次", "几年换", "几年一换", "多久一换", "什么时候换",
        "啥时候换", "啥时候做", "该换", "保养周期", "保养手册", "保养间隔", "how many km", "how many miles",
        "between services", "when should",
    ),
    "warranty": (
        "保修", "质保", "延保", "三包", "warranty", "guarantee", "covered",
        "保固", "質保", "包修", "包换", "退换", "索赔", "在保", "过保", "出保", "保内", "保外", "warranties",
        "guaranteed", "under warranty", "extended warranty", "recall",
    ),
    "first": (
        "首保", "第一次保养", "首次保养", "首次", "first service", "first maintenance",
        "头一次保养", "新车", "磨合期", "first oil change", "new car",
    ),
    "pickup": (
        "开过去", "帮我把车", "接送", "代步车", "备用车", "送回", "loaner", "courtesy car", "bring it back",
        "deliver the car",
        "上门", "取车", "接车", "送车", "取送", "代驾", "送回来", "送到", "接一下", "pick up", "pickup", "collect",
        "deliver", "shuttle", "drop off",
        "上门取车", "取送车", "来拿车", "拿车", "送到家", "送回家", "collection", "delivery", "drop it off",
        "valet", "loan car", "courtesy",
    ),
    "annual_inspection": (
        "上线检测", "环保检测", "检验", "第六年", "inspection due", "年检", "年审", "验车", "检测站", "免检",
        "六年免检", "annual inspection", "mot",
        "年檢", "年審", "车检", "审车", "检车", "过检", "尾气", "检测线", "年检标", "合格标", "annual check",
        "roadworthy", "emissions test", "smog check", "smog", "safety check",
    ),
    "insurance": (
        "划痕险", "车损险", "三者险", "保单", "保费", "赔吗", "报保险", "policy", "renew", "renewal",
        "coverage",
        "保险", "续保", "理赔", "出险", "定损", "交强险", "商业险", "车险", "insurance", "claim", "premium",
        "insurer",
        "保險", "續保", "理賠", "車險", "保险公司", "报案", "走保险", "赔付", "能赔", "险种", "全险", "投保",
        "不计免赔", "盗抢险", "玻璃险", "自燃险", "涉水险", "insured", "insure", "claims", "excess", "deductible",
        "no claims",
    ),
    "greeting": (
        "你好", "您好", "在吗", "在不在", "在么", "有人吗", "哈喽", "哈罗", "嗨", "早上好", "下午好", "晚上好",
        "中午好", "早安", "hello", "hi", "hey", "good morning", "good afternoon", "good evening",
        "嘿", "喂", "哈啰", "在嘛", "在不", "在否", "有人没", "你号", "泥嚎", "妳好", "hiya", "howdy", "yo",
    ),
    "farewell": (
        "再见", "拜拜", "拜", "回聊", "晚安", "再会", "bye", "see you", "goodnight",
        # 改天聊 and 下次聊 say goodbye: longer, they keep 改 (change) and 下次 (interval) quiet
        "回见", "下次聊", "改天聊", "先这样", "就这样", "溜了", "撤了", "先走了", "下线了", "回头聊", "回头见",
        "再聊", "没事了", "没别的事", "没其他事", "就这些", "goodbye", "good bye", "byebye", "cya", "ttyl",
        "talk later", "see ya", "take care", "that s all", "thats all",
    ),
    "thanks": (
        "谢", "感谢", "辛苦", "麻烦了", "麻烦你", "thank", "thanks", "cheers", "appreciate",
        "蟹蟹", "感恩", "费心", "有劳", "劳驾", "多亏", "thx", "ty", "thankyou", "appreciated", "tks", "🙏",
    ),
    # whole answers, not characters: 好 is in 修好, 不 in 不给明细, 行 in 行驶
    "yes": (
        "好的", "好滴", "好嘞", "好呀", "好啊", "嗯", "嗯嗯", "是的", "对的", "没错", "没问题", "确认", "可以的",
        "行的", "ok", "okay", "yes", "yep", "yeah", "sure", "confirm", "correct",
        "好哒", "好哦", "好吧", "行吧", "行啊", "可以啊", "就这么办", "就这样办", "同意", "阔以", "没毛病", "妥",
        "好好好", "对对", "是滴", "是呀", "嗯呢", "恩恩", "明白了", "知道了", "了解了", "👌", "okk", "okey", "okie",
        "okok", "yup", "yea", "absolutely", "definitely", "of course", "alright", "sounds good", "go ahead",
        "perfect",
    ),
    "no": (
        "不用", "不要了", "不是", "不对", "不行", "不了", "不需要", "算了", "no", "nope", "not now", "don t need",
        "没兴趣", "不感兴趣", "不必", "没必要", "别了", "木有", "不考虑", "暂时不", "先不", "再说吧", "nah",
        "not really", "no thanks", "no thank you", "not interested", "never mind", "nevermind",
    ),
    "human": (
        "人工", "真人", "客服", "经理", "负责人", "服务顾问", "顾问", "工作人员", "回电话", "打给我", "打电话给我",
        "机器人", "human", "agent", "person", "operator", "someone", "representative", "staff", "real person",
        "转人工", "活人", "接线员", "找个人", "专员", "主管", "店长", "打我电话", "给我回电", "回个电话", "call me",
        "call me back", "callback", "speak to", "speak with", "talk to", "advisor", "adviser", "supervisor",
        "customer service", "bot", "robot",
    ),
    "stop_messages": (
        "退订", "td", "取消订阅", "别再发", "不要再发", "别发", "不要发", "拒收", "停止发送", "别推送", "不要推送",
        "骚扰", "stop", "unsubscribe", "opt out", "optout", "stopall",
        "退訂", "退定", "取消推送", "取消提醒", "取消通知", "关掉提醒", "关闭提醒", "关闭推送", "关掉推送",
        "不再接收", "不想收", "不要收", "别给我发", "不用发", "删掉我", "从名单", "屏蔽", "免打扰", "勿扰",
        "垃圾短信", "opt me out", "remove me", "remove my number", "stop sending", "no more messages",
        "no more texts", "unsub", "quit",
    ),
    "resume_messages": (
        "重新订阅", "订阅", "恢复推送", "恢复提醒", "继续发", "打开提醒", "start", "unstop", "subscribe",
        "再收到", "继续收到", "继续接收", "恢复", "开启推送", "开启提醒", "打开推送", "打开通知", "允许推送",
        "想收", "重新接收", "加回", "取消退订", "退订错", "訂閱", "opt in", "optin", "resume", "sign me up",
        "sign up", "resubscribe",
    ),
    "score": (
        "分", "满分", "星", "五星", "满意", "打分", "评分", "评价", "stars", "star", "rate", "rating",
        "satisfied",
        "好评", "满意度", "不满意", "滿意", "⭐", "五星好评", "一星", "零分", "不错", "挺好", "很好", "excellent",
        "out of", "points", "score", "feedback", "survey",
    ),
    "change": (
        "改", "换个时间", "换一天", "推迟", "延后", "提前", "挪", "往后", "reschedule", "change", "move",
        "postpone",
        "改期", "改约", "改时间", "换时间", "调时间", "调整", "调个时间", "顺延", "延期", "挪到", "换到", "改到",
        "推后", "push back", "bring forward", "another day", "another time", "rebook",
    ),
    "cancel": (
        "取消", "不去了", "去不了", "来不了", "不来了", "cancel", "call off",
        "撤销", "作废", "不约了", "不做了", "先不约", "退掉预约", "cancelled", "canceled", "cancellation",
        "can t make it", "cant make it", "not coming",
    ),
    "my_booking": (
        "我的预约", "我约的", "约的是", "约的几点", "预约成功", "约上了", "约好了吗", "预约了吗", "查一下预约",
        "my appointment", "my booking", "booked",
        "预约情况", "预约信息", "预约记录", "约上没", "约上了吗", "我约了", "确认一下预约", "预约单", "预约号",
        "my reservation", "have a booking", "am i booked", "is my booking", "when is my", "what time is my",
    ),
}


def _pattern() -> re.Pattern[str]:
    # longest cues first, so 多少钱 wins over 多少; English cues only as whole words
    cues = sorted({cue for group in CONCEPTS.values() for cue in group}, key=len, reverse=True)
    parts = [rf"(?<![a-z]){re.escape(cue)}(?![a-z])" if cue.isascii() and cue[:1].isalpha() else re.escape(cue) for cue in cues]
    return re.compile("|".join(parts))


_CUE = _pattern()
_CONCEPTS_OF: dict[str, tuple[str, ...]] = {}
for _name, _cues in CONCEPTS.items():
    for _cue in _cues:
        _CONCEPTS_OF[_cue] = (*_CONCEPTS_OF.get(_cue, ()), f"#{_name}")


def concepts(text: str) -> list[str]:
    """Returns a "#concept" token for each cue found in the (normalised) text, in order."""
    return [concept for match in _CUE.finditer(text) for concept in _CONCEPTS_OF[match.group()]]
