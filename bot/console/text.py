"""The console's words, Simplified Chinese first, English on request.

One table, keyed by language. Each page module adds its own words with `register()` at import, so a page
and its labels sit together, and `t(key)` in every template finds them all.
"""
from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "app": "DealerCare 客服工作台",
        "login_title": "登录",
        "dealer": "门店代码",
        "username": "用户名",
        "password": "密码",
        "sign_in": "登录",
        "sign_out": "退出登录",
        "bad_login": "用户名或密码错误，或账号已停用。",
        "throttled": "登录失败次数过多，请 15 分钟后再试。",
        "inbox": "收件箱",
        "inbox_empty": "暂无待处理的对话。",
        "signed_in_as": "当前用户",
        "switch": "English",
        "role_agent": "客服",
        "role_manager": "经理",
        "role_admin": "管理员",
        "nav_inbox": "收件箱",
        "nav_tickets": "工单",
        "nav_appointments": "预约",
        "nav_reports": "报表",
        "nav_audit": "审计日志",
        "not_found": "找不到该记录。",
        "channel_wechat": "微信",
        "channel_sms": "短信",
        "channel_simulator": "模拟器",
        "channel_console": "工作台",
        "sender_owner": "车主",
        "sender_bot": "机器人",
        "sender_staff": "客服",
        "sender_scheduler": "系统提醒",
        "note": "内部备注",
        "no_messages": "暂无消息。",
        "save": "保存",
        "cancel": "取消",
    },
    "en": {
        "app": "DealerCare staff console",
        "login_title": "Sign in",
        "dealer": "Dealer code",
        "username": "Username",
        "password": "Password",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "bad_login": "Wrong username or password, or the account is deactivated.",
        "throttled": "Too many failed sign-ins. Please try again in 15 minutes.",
        "inbox": "Inbox",
        "inbox_empty": "No conversations waiting.",
        "signed_in_as": "Signed in as",
        "switch": "中文",
        "role_agent": "Agent",
        "role_manager": "Manager",
        "role_admin": "Admin",
        "nav_inbox": "Inbox",
        "nav_tickets": "Tickets",
        "nav_appointments": "Appointments",
        "nav_reports": "Reports",
        "nav_audit": "Audit log",
        "not_found": "Record not found.",
        "channel_wechat": "WeChat",
        "channel_sms": "SMS",
        "channel_simulator": "Simulator",
        "channel_console": "Console",
        "sender_owner": "Owner",
        "sender_bot": "Bot",
        "sender_staff": "Staff",
        "sender_scheduler": "Reminder",
        "note": "Internal note",
        "no_messages": "No messages yet.",
        "save": "Save",
        "cancel": "Cancel",
    },
}


def register(words: dict[str, dict[str, str]]) -> None:
    """Adds a page module's words; the same key in two modules is a mistake, so it raises."""
    for lang, table in words.items():
        clash = TEXT[lang].keys() & table.keys()
        if clash:
            raise ValueError(f"console text keys defined twice: {sorted(clash)}")
        TEXT[lang].update(table)
    missing = set(words.get("zh", {})) ^ set(words.get("en", {}))
    if missing:
        raise ValueError(f"console text keys without both languages: {sorted(missing)}")
