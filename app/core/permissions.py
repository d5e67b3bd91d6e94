"""The one permission table: role → permissions. Routes ask for a permission, never a role."""

from __future__ import annotations

from app.core.enums import LabeledEnum


class Role(LabeledEnum):
    city_admin = "city_admin", "市级管理员", "City administrator"
    township_admin = "township_admin", "乡镇(街道)管理员", "Township administrator"
    village_admin = "village_admin", "村(社区)管理员", "Village administrator"
    auditor = "auditor", "审计员", "Auditor"
    # Another system's account (a service client, app/services/clients.py): its permissions are chosen per
    # client when it is created, so the role itself grants nothing and no user is ever given it.
    service_client = "service_client", "接口客户端", "Service client (another system)"


# Rank decides who may grant which role: nobody grants a role above their own.
ROLE_RANK: dict[Role, int] = {
    Role.city_admin: 3,
    Role.auditor: 3,
    Role.township_admin: 2,
    Role.village_admin: 1,
}


class Permission(LabeledEnum):
    org_read = "org_read", "查看组织", "Read organisations"
    org_write = "org_write", "维护组织", "Manage organisations"
    people_read = "people_read", "查看人员", "Read people"
    people_write = "people_write", "维护人员", "Manage people and positions"
    pii_read = "pii_read", "查看个人敏感信息", "Read unmasked personal data"
    users_read = "users_read", "查看账号", "Read user accounts"
    users_manage = "users_manage", "管理账号", "Manage user accounts"
    audit_read = "audit_read", "查看审计日志", "Read the audit log"
    clients_manage = "clients_manage", "管理接口客户端", "Create, rotate the secret of and revoke service clients"
    # standards
    standards_read = "standards_read", "查看标准化建设", "Read standards, audits, venues and meetings"
    standards_manage = "standards_manage", "维护标准化目录", "Manage the standards catalogue and reference data"
    audits_write = "audits_write", "开展标准化考评", "Make self-assessments and reviews"
    venues_write = "venues_write", "维护阵地建设", "Record facilities and venue investments"
    meetings_write = "meetings_write", "记录组织生活", "Record organisational-life meetings"
    # responsibilities
    letters_read = "letters_read", "查看责任书", "Read responsibility letters"
    letters_manage = "letters_manage", "管理责任书", "Draft, issue and score responsibility letters (level above)"
    letters_sign_report = "letters_sign_report", "签订责任书并对单交账", "Sign own letters and report on their items"
    lists_read = "lists_read", "查看月度清单", "Read monthly lists and task assignments"
    lists_manage = "lists_manage", "管理月度清单", "Draft, issue and amend monthly lists (city)"
    assignments_report = "assignments_report", "报告任务进展", "Report progress on own task assignments"
    assignments_reopen = "assignments_reopen", "退回已完成任务", "Reopen a done assignment (level above)"
    problems_read = "problems_read", "查看问题清单", "Read problems and quarterly inspections"
    problems_write = "problems_write", "维护问题清单", "Open, edit and submit problems"
    problems_verify = "problems_verify", "验收问题整改", "Verify or reject a rectification (level above)"
    problems_escalate = "problems_escalate", "督办逾期问题", "Escalate overdue problems for on-site guidance (city)"
    inspections_write = "inspections_write", "记录调研督导", "Record quarterly inspections (level above)"
    # posts
    posts_read = "posts_read", "查看设岗定责", "Read duty posts, assignments, logs and reviews"
    posts_write = "posts_write", "管理设岗定责", "Set posts, decide assignments, keep logs and review"
    posts_configure = "posts_configure", "设置设岗定责规则", "Set the duty-post policy (posts per member a year)"
    # evaluations
    evaluations_read = "evaluations_read", "查看评议考核", "Read evaluations, appraisals and rankings"
    evaluations_write = "evaluations_write", "开展评议考核", \
        "Record debriefings, votes, ratings and scores (the level above scores and finalises)"
    evaluations_configure = "evaluations_configure", "设置评议规则", \
        "Set evaluation weights, grade thresholds and the duty list"
    # funds
    funds_read = "funds_read", "查看经费", "Read budgets, disbursements, subsidy policies and runs"
    funds_manage = "funds_manage", "管理经费", "Create budget lines, allocate down, draft subsidy runs"
    funds_configure = "funds_configure", "设置补贴标准", "Record and close the city-wide subsidy policies (rates)"
    funds_request = "funds_request", "申请支出", "Create (and cancel own) disbursement requests"
    funds_approve = "funds_approve", "审批经费", "Approve, pay and reverse disbursements; commit and pay runs"
    dues_read = "dues_read", "查看党费", "Read party dues profiles, payments, statements and arrears"
    dues_write = "dues_write", "管理党费", "Record dues profiles, payments, reductions and arrears decisions"
    # training
    training_read = "training_read", "查看教育培训", "Read training classes, coverage, schools and compliance"
    training_manage = "training_manage", "管理教育培训", \
        "Run training classes and schools; set the yearly target and the schools' monthly minimum"
    training_write = "training_write", "记录培训", "Enrol people, record attendance and school sessions"
    # frontline
    frontline_read = "frontline_read", "查看一线攻坚", "Read frontline work groups, schedules and visits"
    frontline_manage = "frontline_manage", "管理一线攻坚", "Form work groups, pair villages, add and remove members"
    frontline_write = "frontline_write", "记录一线走访", "Record visits (and open the problems they found)"


P = Permission

_READ = {P.org_read, P.people_read, P.users_read}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.city_admin: frozenset(
        _READ | {P.org_write, P.people_write, P.pii_read, P.users_manage, P.audit_read}
    ),
    Role.township_admin: frozenset(_READ | {P.org_write, P.people_write, P.users_manage}),
    Role.village_admin: frozenset({P.org_read, P.people_read, P.people_write}),
    # Auditors read everything, personal data included (each unmasked read is audited),
    # and change nothing.
    Role.auditor: frozenset(_READ | {P.pii_read, P.audit_read}),
    Role.service_client: frozenset(),
}
ROLE_PERMISSIONS[Role.city_admin] |= {P.clients_manage}


# standards: the city keeps the catalogue; every level audits, records venues and meetings
# (services enforce who may review whom); auditors read.
_STANDARDS_WORK = {P.standards_read, P.audits_write, P.venues_write, P.meetings_write}
ROLE_PERMISSIONS[Role.city_admin] |= _STANDARDS_WORK | {P.standards_manage}
ROLE_PERMISSIONS[Role.township_admin] |= _STANDARDS_WORK
ROLE_PERMISSIONS[Role.village_admin] |= _STANDARDS_WORK
ROLE_PERMISSIONS[Role.auditor] |= {P.standards_read}

# responsibilities: the level above drafts, issues, scores and verifies; each organisation signs,
# reports and rectifies its own; the city office runs the monthly lists and escalations.
_RESPONSIBILITIES_READ = {P.letters_read, P.lists_read, P.problems_read}
ROLE_PERMISSIONS[Role.city_admin] |= _RESPONSIBILITIES_READ | {
    P.letters_manage, P.lists_manage, P.assignments_reopen, P.problems_write, P.problems_verify,
    P.problems_escalate, P.inspections_write,
}
ROLE_PERMISSIONS[Role.township_admin] |= _RESPONSIBILITIES_READ | {
    P.letters_manage, P.letters_sign_report, P.assignments_report, P.assignments_reopen, P.problems_write,
    P.problems_verify, P.inspections_write,
}
ROLE_PERMISSIONS[Role.village_admin] |= _RESPONSIBILITIES_READ | {
    P.letters_sign_report, P.assignments_report, P.problems_write,
}
ROLE_PERMISSIONS[Role.auditor] |= _RESPONSIBILITIES_READ

# posts: each organisation sets its posts and decides, logs and reviews its members' assignments;
# the city sets the policy; auditors read.
ROLE_PERMISSIONS[Role.city_admin] |= {P.posts_read, P.posts_write, P.posts_configure}
ROLE_PERMISSIONS[Role.township_admin] |= {P.posts_read, P.posts_write}
ROLE_PERMISSIONS[Role.village_admin] |= {P.posts_read, P.posts_write}
ROLE_PERMISSIONS[Role.auditor] |= {P.posts_read}

# evaluations: villages record debriefings, votes and member ratings; the level above scores, approves
# and finalises (enforced in the services); the city sets weights and thresholds; auditors read.
ROLE_PERMISSIONS[Role.city_admin] |= {P.evaluations_read, P.evaluations_write, P.evaluations_configure}
ROLE_PERMISSIONS[Role.township_admin] |= {P.evaluations_read, P.evaluations_write}
ROLE_PERMISSIONS[Role.village_admin] |= {P.evaluations_read, P.evaluations_write}
ROLE_PERMISSIONS[Role.auditor] |= {P.evaluations_read}

# funds: the city and townships budget, allocate, approve and commit within their subtree (the services keep
# maker-checker: nobody approves their own request or commits their own run); villages read, request
# disbursements and keep their members' dues; only the city sets the subsidy rates (funds_configure); auditors read.
_FUNDS_READ = {P.funds_read, P.dues_read}
ROLE_PERMISSIONS[Role.city_admin] |= _FUNDS_READ | {P.funds_manage, P.funds_configure, P.funds_request,
                                                    P.funds_approve, P.dues_write}
ROLE_PERMISSIONS[Role.township_admin] |= _FUNDS_READ | {P.funds_manage, P.funds_request, P.funds_approve,
                                                        P.dues_write}
ROLE_PERMISSIONS[Role.village_admin] |= _FUNDS_READ | {P.funds_request, P.dues_write}
ROLE_PERMISSIONS[Role.auditor] |= _FUNDS_READ

# training: the city runs the classes and schools and sets the target and minimum; every level enrols its people,
# records attendance and its schools' sessions in its scope; auditors read.
ROLE_PERMISSIONS[Role.city_admin] |= {P.training_read, P.training_manage, P.training_write}
ROLE_PERMISSIONS[Role.township_admin] |= {P.training_read, P.training_write}
ROLE_PERMISSIONS[Role.village_admin] |= {P.training_read, P.training_write}
ROLE_PERMISSIONS[Role.auditor] |= {P.training_read}

# frontline: the city forms the work groups and their membership; townships and villages record the visits to
# their villages; auditors read.
ROLE_PERMISSIONS[Role.city_admin] |= {P.frontline_read, P.frontline_manage, P.frontline_write}
ROLE_PERMISSIONS[Role.township_admin] |= {P.frontline_read, P.frontline_write}
ROLE_PERMISSIONS[Role.village_admin] |= {P.frontline_read, P.frontline_write}
ROLE_PERMISSIONS[Role.auditor] |= {P.frontline_read}


# City-wide permissions: held by the city's role alone (the catalogue, the policies, rates and thresholds, the
# monthly lists, escalation, the training classes, the frontline groups, service clients). They change what holds
# for the whole city, so only a caller scoped at the city uses them: a service client that holds one with a scope
# below the city is refused (app.deps.require, 403 city_only).
CITY_WIDE: frozenset[Permission] = ROLE_PERMISSIONS[Role.city_admin] - frozenset().union(
    *(perms for role, perms in ROLE_PERMISSIONS.items() if role != Role.city_admin))

# Service clients: a client holds the permissions the city administrator chose for it, never account management
# (a machine creates no accounts and no clients). Without a choice it reads like an auditor, personal data excepted.
CLIENT_GRANTABLE: frozenset[Permission] = frozenset(Permission) - {P.users_manage, P.clients_manage}
CLIENT_DEFAULT: frozenset[Permission] = frozenset(
    p for p in Permission if p.value.endswith("_read") and p != P.pii_read
)


def permissions_for(role: str) -> frozenset[Permission]:
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()
