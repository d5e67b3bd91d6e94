"""Generated clients prove the contract: what integrators generate from the OpenAPI document compiles and works.

- TypeScript: `openapi-typescript` (pinned with `typescript` in clients/typescript/package-lock.json) turns the
  document into types, and `tsc --noEmit` compiles clients/typescript/usage.ts, a typed usage file that also
  holds lines the compiler must reject (`@ts-expect-error`: were the types loose, those lines would fail it).
  Needs node and npm; `npm ci` installs the pinned packages when node_modules is missing (.ci/run does it up
  front). Skipped, saying why, without node/npm or the registry.
- Python: `openapi-python-client` (a pinned dev dependency) generates a client into a temporary directory
  (never committed), and a scenario runs through it against the running service (tests/live_service.py):
  log in, list organisations, open a problem, rectify and submit it as the village, verify it as the level
  above, read the problem's audit trail as the auditor and check the audit chain.

The document used is the one the code produces (`python -m app export-openapi`), which tests/test_platform.py
holds equal to the committed openapi/openapi.json.
"""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.live_service import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parent.parent
TS_DIR = ROOT / "clients" / "typescript"
PACKAGE = "partyrecords_client"
TOWNSHIP, VILLAGE, AUDITOR = "lucheng_admin", "jiangjunqiao_admin", "auditor"  # app/demo/platform.py
VILLAGE_CODE = "513301001001"


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.__main__ import render_openapi

    path = tmp_path_factory.mktemp("contract") / "openapi.json"
    path.write_text(render_openapi(), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ TypeScript


def _npm_ready() -> None:
    """Skip unless node and npm are here and the pinned packages are (or can be) installed."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: install Debian's nodejs and npm "
                    "(apt-get install -y nodejs npm; .ci/run does it) to compile the generated TypeScript types")
    if not (TS_DIR / "node_modules" / ".bin" / "tsc").exists():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, capture_output=True, text=True,
                              timeout=600, check=False)
        if done.returncode != 0:
            pytest.skip(f"`npm ci` in clients/typescript failed (is the npm registry reachable?): "
                        f"{done.stderr.strip()[-500:]}")


def _run(args: list[str], cwd: Path, what: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{what} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_typescript_types_generated_from_the_contract_compile(contract: Path) -> None:
    _npm_ready()
    bin_dir = TS_DIR / "node_modules" / ".bin"
    generated = TS_DIR / "generated" / "api.d.ts"
    generated.parent.mkdir(exist_ok=True)
    # The same flags as `npm run generate` (clients/typescript/package.json), on the document the code produces.
    _run([str(bin_dir / "openapi-typescript"), str(contract), "--default-non-nullable", "false",
          "--output", str(generated)], TS_DIR, "openapi-typescript")
    text = generated.read_text(encoding="utf-8")
    assert "OrganizationPage: {" in text and "Page_" not in text
    _run([str(bin_dir / "tsc"), "--noEmit", "-p", "."], TS_DIR, "tsc --noEmit (clients/typescript/usage.ts)")


# ------------------------------------------------------------------------------------------ Python


@pytest.fixture(scope="module")
def client_package(contract: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    generator = Path(sys.executable).with_name("openapi-python-client")
    if not generator.exists():
        pytest.skip("openapi-python-client is not installed: pip install -c constraints.txt -e '.[dev]'")
    out = tmp_path_factory.mktemp("python-client")
    config = out / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n", encoding="utf-8")
    done = subprocess.run([str(generator), "generate", "--path", str(contract), "--output-path",
                           str(out / PACKAGE), "--config", str(config), "--meta", "none"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Warning" not in done.stdout, f"the generator could not read part of the contract:\n{done.stdout}"
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _api(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def _model(name: str) -> Any:
    return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


def _log_in(base: str, username: str) -> Any:
    from partyrecords_client import AuthenticatedClient, Client

    answer = _api("auth.auth_token").sync_detailed(
        client=Client(base_url=base),
        body=_model("TokenRequest")(username=username, password=DEMO_PASSWORD),  # grant_type defaults to password
    )
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, _model("TokenPair"))
    return AuthenticatedClient(base_url=base, token=answer.parsed.access_token, raise_on_unexpected_status=True)


def _ok(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.content
    return answer.parsed


def test_a_scenario_through_the_generated_python_client(client_package: ModuleType, live_service: str) -> None:
    township = _log_in(live_service, TOWNSHIP)

    # List organisations: the township sees its villages, typed as OrganizationPage.
    page = _ok(_api("organizations.organizations_list").sync_detailed(
        client=township, subtree=True, q=VILLAGE_CODE[:9], limit=200))
    assert isinstance(page, _model("OrganizationPage")) and page.total >= 1
    village = next(org for org in page.items if org.code == VILLAGE_CODE)

    # The township opens a problem of its village.
    problems = "responsibilities"
    opened = _ok(_api(f"{problems}.problems_create").sync_detailed(client=township, body=_model("ProblemCreate")(
        org_id=village.id, year=dt.date.today().year, source=_model("ProblemSource").QUARTERLY_INSPECTION,
        description="generated-client scenario: the meeting records are incomplete",
        deadline=dt.date.today() + dt.timedelta(days=30))), 201)
    assert isinstance(opened, _model("ProblemDetail")) and opened.status == _model("ProblemStatus").OPEN

    # The village rectifies and submits; it may not verify its own problem (a typed problem document).
    village_admin = _log_in(live_service, VILLAGE)
    _ok(_api(f"{problems}.problems_rectify").sync_detailed(opened.id, client=village_admin))
    submitted = _ok(_api(f"{problems}.problems_submit").sync_detailed(
        opened.id, client=village_admin, body=_model("ProblemSubmit")(note="records completed and filed")))
    assert submitted.status == _model("ProblemStatus").SUBMITTED
    refused = _api(f"{problems}.problems_verify").sync_detailed(opened.id, client=village_admin)
    assert refused.status_code == 403 and isinstance(refused.parsed, _model("Problem"))
    assert refused.parsed.code and refused.parsed.status == 403

    # The level above verifies.
    verified = _ok(_api(f"{problems}.problems_verify").sync_detailed(opened.id, client=township))
    assert verified.status == _model("ProblemStatus").VERIFIED and verified.verified_by is not None

    # The auditor reads the problem's trail and checks the hash chain.
    auditor = _log_in(live_service, AUDITOR)
    trail = _ok(_api("audit.audit_list").sync_detailed(client=auditor, entity="problem", entity_id=str(opened.id),
                                                      sort="id"))
    assert isinstance(trail, _model("AuditLogPage"))
    actions = [row.action for row in trail.items]
    assert actions == ["problem.open", "problem.rectify", "problem.submit", "problem.verify"], actions
    assert {row.username for row in trail.items} == {TOWNSHIP, VILLAGE}
    chain = _ok(_api("audit.audit_verify").sync_detailed(client=auditor))
    assert chain.ok is True and chain.checked >= len(actions)
