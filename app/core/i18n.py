"""Language negotiation and the one translation table of problem documents.

The service speaks English and Simplified Chinese. `preferred_language(Accept-Language)` picks
"zh" when the header ranks a Chinese tag (zh, zh-CN, zh-Hans, ...) above every English one, and
"en" otherwise (no header, `*`, unsupported or unreadable tags).

Rules of the table (`MESSAGES`, keyed by the problem `code`, which never changes with the language):
- every code has a Chinese title; the English title stays the one the code raises with;
- a detail is translated only when it is a fixed sentence, listed under its code with its English
  text as the key; a detail that carries values (ids, names, amounts, lists) stays in English and only
  the title is translated, so the values are never garbled by a translation;
- a code missing from the table keeps its English title (tests/test_i18n.py lists every code raised
  in app/ and fails when one lacks its Chinese title).
Pydantic's request-validation messages are translated by error type (`VALIDATION_MESSAGES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from app.core import accept

Language = Literal["zh", "en"]
DEFAULT_LANGUAGE: Language = "en"
CONTENT_LANGUAGE: dict[Language, str] = {"zh": "zh-CN", "en": "en"}

_TAG = re.compile(r"\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def parse_accept_language(header: str | None) -> list[tuple[str, float]]:
    """Language ranges with their q-values, best first (ties keep the header's order); unreadable ranges dropped."""
    return accept.ranges(header, _TAG)


def preferred_language(header: str | None) -> Language:
    for tag, q in parse_accept_language(header):
        if q <= 0:
            continue
        primary = tag.split("-", 1)[0]
        if primary == "zh":
            return "zh"
        if primary in ("en", "*"):
            return "en"
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Message:
    zh: str
    details: dict[str, str] = field(default_factory=dict)


MESSAGES: dict[str, Message] = {
    # Generic codes (errors._TITLES and the framework's handlers).
    "error": Message("错误"),
    "bad_request": Message("请求有误"),
    "unauthenticated": Message("需要登录", {
        "A valid bearer token is required.": "需要有效的访问令牌（Bearer token）。",
        "The token is invalid or expired.": "令牌无效或已过期。",
        "The token has been revoked.": "令牌已被吊销。",
        "Not authenticated": "未登录。",
    }),
    "forbidden": Message("无权操作"),
    "not_found": Message("未找到", {
        "Not Found": "请求的资源不存在。",
        "That refresh token is not one of yours.": "该刷新令牌不属于您。",
        "No person with that number in your scope.": "您的权限范围内没有该证件号码对应的人员。",
    }),
    "method_not_allowed": Message("不支持该请求方法", {"Method Not Allowed": "该地址不支持此请求方法。"}),
    "not_acceptable": Message("无法提供所请求的格式"),
    "conflict": Message("冲突", {
        "The change conflicts with the current state of the records (a duplicate or a concurrent change).":
            "该修改与记录的当前状态冲突（重复数据或并发修改）。",
        "The record was changed by a concurrent request; fetch it again.":
            "该记录已被同时进行的另一请求修改，请重新获取。",
    }),
    "precondition_failed": Message("前提条件不满足"),
    "payload_too_large": Message("请求体过大", {
        "The request body is larger than the 1 MiB the service accepts.": "请求体超过了服务接受的 1 MiB 上限。",
    }),
    "unsupported_media_type": Message("不支持的媒体类型"),
    "validation_error": Message("输入无效", {
        "Invalid input": "输入无效。",
        "A value is out of the range or character set the records can hold.": "某个值超出了记录可容纳的范围或字符集。",
        "NUL characters are not allowed in the URL.": "URL 中不允许出现 NUL 字符。",
    }),
    "precondition_required": Message("缺少前提条件"),
    "too_many_requests": Message("请求过于频繁"),
    "internal_error": Message("服务器内部错误"),
    "service_unavailable": Message("服务暂不可用", {
        "Too many logins or password changes at once; try again shortly.": "同时登录或修改密码的请求过多，请稍后重试。",
        "Too many exports are being written; try again shortly.": "正在生成的导出文件过多，请稍后重试。",
    }),
    "database_unavailable": Message("服务暂不可用", {
        "The database is not reachable; try again shortly.": "无法连接数据库，请稍后重试。",
        "The database is not reachable.": "无法连接数据库。",
        "The database did not answer in the time allowed; try again shortly.": "数据库未在规定时间内应答，请稍后重试。",
        "The database is busy with other changes; try again shortly.": "数据库正忙于处理其他修改，请稍后重试。",
    }),
    # Platform: accounts, tokens, versions, idempotency, lists, permissions.
    "invalid_credentials": Message("身份验证失败", {
        "Unknown username or wrong password.": "用户名不存在或密码错误。",
        "The refresh token is invalid, expired, revoked or already used.": "刷新令牌无效、已过期、已吊销或已被使用。",
    }),
    "too_many_login_failures": Message("登录失败次数过多", {
        "Too many failed logins for this username; wait before trying again.": "该用户名登录失败次数过多，请稍后再试。",
    }),
    "permission_denied": Message("缺少权限"),
    "role_above_own": Message("不能授予高于自身的角色", {
        "A township administrator manages only village users inside the township.":
            "乡镇管理员只能管理本乡镇内的村级用户。",
    }),
    "own_account": Message("不能修改自己的账号", {
        "You cannot change your own role or disable your own account.": "不能更改自己的角色或停用自己的账号。",
    }),
    "duplicate_username": Message("用户名已被使用"),
    "wrong_password": Message("密码错误", {"The current password is wrong.": "当前密码错误。"}),
    "client_has_no_password": Message("接口客户端没有密码", {
        "A service client has no password: a city administrator rotates its secret.":
            "接口客户端没有密码，请由市级管理员轮换其密钥。",
    }),
    # Service clients.
    "invalid_client": Message("客户端身份验证失败", {
        "Unknown client, wrong secret or a revoked client.": "客户端不存在、密钥错误或客户端已被吊销。",
    }),
    "invalid_scope": Message("请求的权限范围无效", {
        "The scope must be permission names separated by spaces.": "权限范围应为以空格分隔的权限名称。",
    }),
    "permission_above_own": Message("不能授予自身没有的权限"),
    "duplicate_client_name": Message("客户端名称已被使用"),
    "client_revoked": Message("客户端已被吊销"),
    "if_match_required": Message("需要 If-Match 请求头", {
        "Send If-Match with the ETag of the version you are changing.": "请在 If-Match 中发送所修改版本的 ETag。",
    }),
    "version_mismatch": Message("版本不一致", {
        "If-Match does not name a version of this record.": "If-Match 未指明该记录的任何版本。",
    }),
    "idempotency_in_flight": Message("相同幂等键的请求正在处理", {
        "Retry the request.": "请重试该请求。",
        "A request with this Idempotency-Key is still being processed; retry shortly.":
            "使用该幂等键的请求仍在处理中，请稍后重试。",
    }),
    "idempotency_key_reused": Message("幂等键已被其他请求使用", {
        "This Idempotency-Key was already used for a different request; use a new key for a new request.":
            "该幂等键已用于另一个请求；新的请求请使用新的幂等键。",
    }),
    "idempotency_unsupported": Message("不支持幂等键", {
        "Idempotency keys belong to a user.": "幂等键只属于登录用户。",
    }),
    "invalid_cursor": Message("游标无效", {
        "The cursor is not one this service issued; pass `next` of an earlier answer unchanged, or leave "
        "`after` out to start from the beginning.":
            "该游标不是本服务签发的；请原样传入上一次应答中的 next，或不传 after 从头开始。",
    }),
    "cursor_mismatch": Message("游标不属于该列表或排序", {
        "This cursor belongs to another list or another sort; pass it with the path and `sort` of the page it "
        "came from.": "该游标属于另一个列表或另一种排序；请在产生它的那一页的地址和 sort 下使用。",
    }),
    "cursor_with_offset": Message("after 与 offset 不能同时使用", {
        "Pass either `after` or `offset`, not both: the cursor already says where the page starts.":
            "after 和 offset 只能传一个：游标已经指明了这一页从哪里开始。",
    }),
    "cursor_unsupported": Message("该列表或排序不支持游标", {
        "This list pages with `offset` only (it is computed as a whole, or its order cannot be resumed from a "
        "cursor); leave `after` out.":
            "该列表只能用 offset 分页（它是整体计算的，或其排序无法从游标续接）；请不要传 after。",
        "This sort includes personal data, which a cursor never carries; page it with `offset` or sort by another "
        "field.": "该排序包含个人信息，游标从不携带个人信息；请用 offset 分页，或按其他字段排序。",
    }),
    "updated_since_unsupported": Message("该列表不支持按更新时间筛选", {
        "This list's records keep no updated_at, so updated_since cannot filter it.":
            "该列表的记录没有更新时间（updated_at），不能用 updated_since 筛选。",
    }),
    "invalid_sort": Message("排序字段无效", {
        "Arrears are ordered flagged first, then by the longest run.": "欠缴名单固定按先标记、后连续欠缴月数排序。",
    }),
    "level_above_required": Message("须由上级组织操作", {
        "Only the level above the member's organisation may approve a dues reduction.":
            "只有党员所在组织的上级才能批准减免党费。",
    }),
    "own_organization_required": Message("须由本组织操作", {
        "Only the organisation itself makes and edits its self-assessment.": "自评只能由本组织填写和修改。",
    }),
    "maker_checker": Message("须由另一位用户复核", {
        "You created this disbursement; another user must approve it.": "该支出由您创建，须由另一位用户审批。",
        "You asked for this reduction; another user must decide it.": "该减免由您申请，须由另一位用户决定。",
        "You computed this run; another user must commit it.": "该批次由您计算，须由另一位用户确认。",
    }),
    "not_maker": Message("只有申请人或审批人可以取消", {
        "Only the user who created the request, or an approver, may cancel it.":
            "只有创建该申请的用户或审批人可以取消。",
    }),
    "city_only": Message("须由市级操作"),
    # Organisations and people.
    "duplicate_code": Message("代码重复"),
    "duplicate_credit_code": Message("统一社会信用代码重复"),
    "parent_dissolved": Message("上级组织已撤销"),
    "organization_dissolved": Message("组织已撤销"),
    "org_dissolved": Message("组织已撤销"),
    "already_dissolved": Message("组织已撤销"),
    "code_in_use": Message("代码正在使用", {
        "Children's division codes extend this code; move or recode them first.":
            "下级组织的区划代码以此代码为前缀，请先迁移或重新编码下级组织。",
        "Children's division codes extend this code; recode them first.":
            "下级组织的区划代码以此代码为前缀，请先重新编码下级组织。",
    }),
    "has_active_children": Message("仍有在册的下级组织"),
    "has_active_people": Message("仍有在册人员"),
    "has_active_users": Message("仍有启用的用户账号"),
    "cycle": Message("组织结构形成循环", {
        "An organisation cannot move under itself or one of its descendants.": "组织不能迁移到自身或其下级组织之下。",
    }),
    "same_parent": Message("上级组织未变化"),
    "duplicate_id_number": Message("身份证号码已登记"),
    "duplicate_phone": Message("手机号码已登记"),
    "person_deceased": Message("人员已去世"),
    "person_not_active": Message("人员不在册"),
    "person_moved": Message("人员已调出该组织"),
    "too_many_lookups": Message("查询过于频繁", {
        "Too many lookups; wait before trying again.": "查询过于频繁，请稍后再试。",
    }),
    "already_left": Message("人员已离开"),
    "already_retired": Message("已退休"),
    "overlapping_position": Message("职务任期重叠"),
    "position_already_ended": Message("职务已结束"),
    "position_starts_after_leaving": Message("职务开始日期晚于离开日期"),
    # Responsibilities: letters, monthly lists, problems.
    "invalid_status": Message("当前状态不允许此操作"),
    "wrong_status": Message("当前状态不允许此操作"),
    "duplicate_letter": Message("责任书重复"),
    "items_frozen": Message("责任书事项已锁定"),
    "no_items": Message("没有事项"),
    "item_scored": Message("事项已评分"),
    "item_not_reported": Message("事项尚未报告"),
    "items_unscored": Message("仍有事项未评分"),
    "list_issued": Message("清单已下发"),
    "task_cancelled": Message("任务已取消"),
    "task_without_targets": Message("任务没有对象"),
    "no_tasks": Message("没有有效任务"),
    # Funds.
    "budget_exceeded": Message("超出预算"),
    "ledger_mismatch": Message("账目不一致"),
    "duplicate_dues_line": Message("党费预算科目重复"),
    "no_rate": Message("没有适用的费率"),
    "duplicate_profile": Message("党费档案重复"),
    "already_paid": Message("已缴纳"),
    "no_arrears": Message("没有欠缴"),
    "policy_overlap": Message("政策有效期重叠"),
    "overlapping_run": Message("发放批次重叠"),
    "no_policy": Message("没有适用的政策"),
    # Standards.
    "audit_finalized": Message("评审已定稿"),
    "audit_not_draft": Message("评审不是草稿"),
    "audit_not_submitted": Message("评审尚未提交"),
    "scores_incomplete": Message("评分不完整"),
    "set_in_use": Message("标准体系正在使用"),
    "set_not_draft": Message("标准体系不是草稿"),
    "set_not_published": Message("标准体系尚未发布"),
    "set_retired": Message("标准体系已停用"),
    "draft_exists": Message("已有草稿"),
    "aspects_missing": Message("缺少评审方面"),
    "duplicate_item_code": Message("事项编号重复"),
    "duplicate_facility": Message("阵地设施重复"),
    "duplicate_frequency": Message("会议频次重复"),
    # Duty posts.
    "no_post_policy": Message("没有生效的设岗定责政策"),
    "duplicate_policy": Message("政策重复"),
    "capacity_below_filled": Message("名额少于已在岗人数"),
    "already_open": Message("岗位已开放"),
    "already_closed": Message("岗位已关闭"),
    "post_closed": Message("岗位已关闭"),
    "post_full": Message("岗位已满"),
    "already_assigned": Message("已申请或已在岗"),
    "post_limit_reached": Message("已达岗位数量上限"),
    "wrong_route": Message("认岗方式不符"),
    "not_held": Message("未在岗"),
    "already_reviewed": Message("已评议"),
    "not_eligible": Message("不符合条件"),
    # Evaluations.
    "duplicate_evaluation": Message("评议重复"),
    "evaluation_finalized": Message("评议已定稿"),
    "duplicate_duty": Message("职责重复"),
    "duplicate_setting": Message("设置重复"),
    "duplicate_thresholds": Message("等次分数线重复"),
    "duplicate_assessment": Message("考核重复"),
    "duplicate_appraisal": Message("年度考核重复"),
    "duplicate_review": Message("评议重复"),
    "no_setting": Message("没有生效的设置"),
    "no_thresholds": Message("没有生效的等次分数线"),
    "no_duties": Message("没有职责清单"),
    "not_a_member": Message("不是党员"),
    "no_entries": Message("没有待评党员"),
    "unrated_entries": Message("仍有党员未评定"),
    "excellent_share_exceeded": Message("优秀比例超出上限"),
    "report_incomplete": Message("述职不完整"),
    "votes_missing": Message("缺少群众测评"),
    "committee_scores_missing": Message("缺少评议小组评分"),
    "appraisal_recorded": Message("年度考核已记录"),
    "quarterly_assessments_missing": Message("缺少季度考核"),
    "already_in_pool": Message("已在后备干部库中"),
    "already_released": Message("已移出"),
    # Training and frontline work.
    "no_training_policy": Message("没有生效的培训政策"),
    "duplicate_school": Message("学校重复"),
    "school_closed": Message("学校已关闭"),
    "school_not_open": Message("学校尚未开办"),
    "class_cancelled": Message("培训班已取消"),
    "class_not_started": Message("培训班尚未开始"),
    "already_enrolled": Message("已报名"),
    "already_cancelled": Message("已取消"),
    "hours_below_attendance": Message("学时少于已出勤学时"),
    "duplicate_group": Message("工作组重复"),
    "already_paired": Message("已结对"),
    "already_member": Message("已是成员"),
}


def localize(language: Language, code: str, title: str, detail: str | None) -> tuple[str, str | None]:
    """The title and detail of a problem in `language` (English is the source text)."""
    if language == "en":
        return title, detail
    message = MESSAGES.get(code)
    if message is None:
        return title, detail
    if detail is not None:
        detail = message.details.get(detail, detail)
    return message.zh, detail


# Request-validation messages by pydantic error type; {names} come from the error's ctx.
VALIDATION_MESSAGES: dict[str, str] = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不允许的字段",
    "string_type": "应为字符串",
    "string_too_short": "至少应有 {min_length} 个字符",
    "string_too_long": "最多只能有 {max_length} 个字符",
    "string_pattern_mismatch": "格式不符合要求",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "decimal_max_places": "小数位数不能超过 {decimal_places} 位",
    "bool_type": "应为布尔值",
    "bool_parsing": "应为布尔值",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应大于或等于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "应小于或等于 {le}",
    "enum": "应为以下值之一：{expected}",
    "literal_error": "应为以下值之一：{expected}",
    "date_type": "应为日期",
    "date_parsing": "应为 YYYY-MM-DD 格式的日期",
    "date_from_datetime_parsing": "应为 YYYY-MM-DD 格式的日期",
    "datetime_type": "应为日期时间",
    "datetime_parsing": "应为 ISO 8601 格式的日期时间",
    "list_type": "应为列表",
    "too_short": "至少应有 {min_length} 项",
    "too_long": "最多只能有 {max_length} 项",
    "dict_type": "应为对象",
    "model_attributes_type": "应为对象",
    "json_invalid": "JSON 格式无效",
    "uuid_parsing": "应为 UUID",
    "url_parsing": "应为 URL",
    "value_error": "值无效：{error}",
}


def validation_message(language: Language, error_type: str | None, msg: str, ctx: dict[str, Any] | None) -> str:
    """Pydantic's message for one field in `language`; the English message when no translation fits."""
    if language == "en" or error_type is None or error_type not in VALIDATION_MESSAGES:
        return msg
    try:
        return VALIDATION_MESSAGES[error_type].format(**{k: str(v) for k, v in (ctx or {}).items()})
    except (KeyError, IndexError, ValueError):
        return msg
