"""The words of the pages in zh-CN and en, and times as a person reads them.

A page speaks the language chosen with the language switch (a cookie), else the browser's
(``Accept-Language``), else the company's ``locale``; the packs' own labels come in both
languages from the pack (``Label.text(locale)``). A message missing from a catalogue
shows its English key, never an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

LOCALES = ("zh-CN", "en")
LANG_COOKIE = "kefu_lang"

ZH: dict[str, str] = {
    "kefu": "客服",
    "Sign in": "登录",
    "Sign out": "退出",
    "Username": "用户名",
    "Password": "密码",
    "Company": "公司",
    "Inbox": "待办",
    "Cases": "案件",
    "New case": "新建案件",
    "Dispatch board": "派工看板",
    "Reports": "报表",
    "Procedures": "流程",
    "Mine": "我的",
    "My roles": "我的角色",
    "Overdue": "已超期",
    "Number": "编号",
    "Procedure": "流程",
    "Step": "步骤",
    "Status": "状态",
    "Assignees": "处理人",
    "Due": "期限",
    "Updated": "更新时间",
    "Created": "创建时间",
    "Search": "搜索",
    "Filter": "筛选",
    "any": "全部",
    "open": "处理中",
    "closed": "已关闭",
    "Previous": "上一页",
    "Next": "下一页",
    "No cases.": "没有案件。",
    "Fields": "字段",
    "Deadlines": "期限",
    "Journal": "日志",
    "Actions": "操作",
    "Linked cases": "关联案件",
    "No action is open to you at this step.": "此步骤没有您可执行的操作。",
    "Open": "新建",
    "Submit": "提交",
    "required": "必填",
    "yes": "是",
    "no": "否",
    "Remove": "删除",
    "Please correct the marked fields.": "请更正标出的字段。",
    "This case changed while you were editing it.": "您编辑期间,此案件已被他人修改。",
    "What changed since you opened it:": "您打开后发生的变化:",
    "Your entries are kept below; check them and submit again.": (
        "您填写的内容已保留在下方;请核对后重新提交。"
    ),
    "The action you were taking is no longer open at this step; what you typed:": (
        "您正在执行的操作在当前步骤已不可用;您填写的内容:"
    ),
    "Refused by rule": "被规则拒绝",
    "Done.": "已完成。",
    "started": "开始",
    "due": "到期",
    "counted": "已计",
    "paused": "暂停",
    "days skipped": "跳过的日期",
    "days counted": "计入的周末",
    "Why": "原因",
    "rule": "规则",
    "facts": "事实",
    "due in": "剩余",
    "overdue by": "已超期",
    "Diagram": "流程图",
    "Roles": "角色",
    "Your session has ended; sign in again.": "会话已结束,请重新登录。",
    "The form has expired; submit it again.": "表单已过期,请重新提交。",
    "Not found": "未找到",
    "Not allowed": "无权操作",
    "Error": "错误",
    "Back": "返回",
    "Language": "语言",
    "Report a problem": "在线报修",
    "Track a case": "查询进度",
    "Tracking number": "受理编号",
    "Contact (phone or e-mail given)": "联系方式(报修时留下的电话或邮箱)",
    "Your tracking number": "您的受理编号",
    "Keep it to follow your case.": "请保存此编号,以便查询进度。",
    "No case matches this number and contact.": "编号与联系方式不匹配。",
    "Too many attempts; try again later.": "尝试次数过多,请稍后再试。",
    "Thank you.": "谢谢。",
    "This link has expired or was used already.": "此链接已失效或已被使用。",
    "Current step": "当前步骤",
    "History": "处理记录",
    "Load": "工作量",
    "Person": "人员",
    "open cases": "处理中的案件",
    "of which overdue": "其中超期",
    "Run": "运行",
    "Open the case": "打开案件",
    "Add rows": "增加行",
    "new": "新",
    "what": "内容",
    "who": "谁",
    "when": "时间",
    "Skip to content": "跳到正文",
    "Bad request": "请求有误",
    "Export": "导出",
    "procedure and status as chosen": "按所选流程和状态",
    "every case of the procedure and status, not only these search results": (
        "导出所选流程和状态的全部案件,而不仅是搜索结果"
    ),
    "the table below has the same figures": "下表为相同数据",
    # documents: attachments, signatures, records
    "Signatures": "签字",
    "signed": "已签字",
    "not signed": "未签字",
    "countersigned": "会签",
    "Covers": "签字确认的字段",
    "Signed by": "签字人",
    "every one of": "以下每个角色",
    "one of": "以下任一角色",
    "Still to sign": "待签",
    "void": "作废",
    "changed after signing": "签字后被修改",
    "Submitting signs": "提交即签字",
    "It vouches for": "签字确认",
    "Changing one of them later voids it.": "之后修改其中任一字段,签字即作废。",
    "You cannot sign this:": "您不能签此字:",
    "You sign as": "您的签字角色:",
    "yours completes the countersignature.": "您的签字将完成会签。",
    "the case moves on when every role has signed; still to sign:": (
        "所有角色签字后案件才进入下一步;待签:"
    ),
    "Attachments": "附件",
    "replaced": "已被替换",
    "Records": "记录表单",
    "print (HTML)": "打印(HTML)",
    "Files saved": "已保存的文件",
    "keep": "保留",
    "uploaded, not saved yet": "已上传,尚未保存",
    "Files up to": "每个文件不超过",
    "at most": "最多",
    "a new file replaces the saved one": "新文件将替换已保存的文件",
    "the files sent were larger than the server takes in one form": (
        "提交的文件总大小超过服务器的上限"
    ),
    "no such portal": "没有此服务门户",
    "no such form": "没有此表单",
    "Not signed in": "未登录",
    "Method not allowed": "不支持此操作",
    "Conflict": "冲突",
    "The request is too large.": "提交的内容过大。",
    "Unsupported media type": "不支持的内容类型",
    "Something went wrong on the server; it has been logged.": "服务器出错,已记录。",
}

_MESSAGES: Mapping[str, Mapping[str, str]] = {"zh-CN": ZH, "en": {}}


def gettext(locale: str, message: str) -> str:
    """``message`` (its English text) in ``locale``."""
    return _MESSAGES.get(locale, {}).get(message, message)


def label(value: Any, locale: str) -> str:
    """A pack or config label (``Label``, a ``{"zh-CN": …, "en": …}`` mapping or text)."""
    if value is None:
        return ""
    if hasattr(value, "text"):
        return str(value.text(locale))
    if isinstance(value, Mapping):
        en = value.get("en")
        return str(en if locale == "en" and en else value.get("zh-CN") or en or "")
    return str(value)


def choose(cookie: str | None, accept: str | None, company_locale: str) -> str:
    """The page language: the person's choice (the switch's cookie), else the first of the
    browser's languages (``Accept-Language``) we have, else the company's ``locale``."""
    if cookie in LOCALES:
        return str(cookie)
    for part in (accept or "").split(",")[:10]:
        tag = part.split(";", 1)[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return company_locale if company_locale in LOCALES else "zh-CN"


def relative(due: dt.datetime | None, now: dt.datetime, locale: str) -> str:
    """``due in 3 h`` / ``overdue by 2 d`` (coarse: the largest unit)."""
    if due is None:
        return ""
    seconds = int((due - now).total_seconds())
    span = abs(seconds)
    if span >= 86400:
        n, unit = span // 86400, ("天" if locale == "zh-CN" else "d")
    elif span >= 3600:
        n, unit = span // 3600, ("小时" if locale == "zh-CN" else "h")
    else:
        n, unit = max(span // 60, 1), ("分钟" if locale == "zh-CN" else "min")
    word = gettext(locale, "due in" if seconds >= 0 else "overdue by")
    return f"{word} {n} {unit}" if locale == "en" else f"{word} {n}{unit}"


def local(moment: dt.datetime | str | None, tz: dt.tzinfo) -> str:
    """An instant in the company's time zone, to the minute, with its offset."""
    if not moment:
        return ""
    if isinstance(moment, str):
        try:
            moment = dt.datetime.fromisoformat(moment)
        except ValueError:
            return str(moment)
    if moment.tzinfo is None:  # stored values are UTC; never guess another zone
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %z")


def size(n: int | None) -> str:
    """A file size as a person reads it, in the decimal units packs write limits in
    (``max_size: 10MB`` is 10,000,000 bytes): ``820 B``, ``14 kB``, ``2.5 MB``."""
    if n is None:
        return ""
    if n < 1000:
        return f"{n} B"
    if n < 1000 * 1000:
        return f"{n / 1000:.0f} kB"
    return f"{n / 1000 / 1000:.1f} MB".replace(".0 MB", " MB")


def media(kind: str) -> str:
    """A MIME type as its usual short name: ``image/jpeg`` → ``JPEG``, ``image/*`` →
    ``image``, ``application/pdf`` → ``PDF``."""
    major, _, minor = kind.partition("/")
    if minor == "*":
        return major
    short = {"plain": "TXT", "vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX"}
    short["vnd.openxmlformats-officedocument.spreadsheetml.sheet"] = "XLSX"
    return short.get(minor, minor.upper())
