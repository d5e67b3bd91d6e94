"""Audit the pinned dependency set (constraints.txt) for known vulnerabilities.

Runs pip-audit (PyPI's vulnerability data) over every pin. Where pip-audit cannot audit a pin because the
registry does not answer its per-release query ("not found on PyPI", as on this project's machines, which
reach only the registry's project pages), the pin is audited from the project page instead: PyPI lists there
the known vulnerabilities of the project's current release, so a pin that *is* the current release is
audited; one that is not cannot be, and fails the audit unless reviewed. A yanked pin fails too.

Reviewed exceptions live in security/pip-audit-exceptions.md, one table row per vulnerability id or
unauditable pin; anything else found fails (exit 1). Needs the network (the registry); `make test` does not
call it, `make audit-deps` and CI do.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
EXCEPTIONS = ROOT / "security" / "pip-audit-exceptions.md"
PROJECT_URL = "https://pypi.org/pypi/{name}/json"
# A table row of the exceptions file: | <vulnerability id or "unaudited"> | <package> | <version> | ...
ROW = re.compile(r"^\|\s*`?([A-Za-z0-9._-]+)`?\s*\|\s*`?([A-Za-z0-9._-]+)`?\s*\|\s*`?([A-Za-z0-9.+!_-]+)`?\s*\|")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Exceptions:
    vulns: set[tuple[str, str]] = field(default_factory=set)  # (package, vulnerability id)
    unaudited: set[tuple[str, str]] = field(default_factory=set)  # (package, version)


def read_exceptions(path: Path = EXCEPTIONS) -> Exceptions:
    out = Exceptions()
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line.strip())
        if not m or m.group(1).lower() in {"id", "vulnerability"} or set(m.group(1)) <= {"-"}:
            continue
        ident, package, version = m.group(1), normalise(m.group(2)), m.group(3)
        if ident.lower() == "unaudited":
            out.unaudited.add((package, version))
        else:
            out.vulns.add((package, ident.upper()))
    return out


def read_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


def run_pip_audit(path: Path = CONSTRAINTS) -> dict[str, dict]:
    """pip-audit's verdict per pin: {"vulns": [...]} or {"skip_reason": "..."}."""
    cmd = [sys.executable, "-m", "pip_audit", "-r", str(path), "--no-deps", "--disable-pip",
           "--progress-spinner", "off", "--format", "json", "--vulnerability-service", "pypi"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"pip-audit gave no report (exit {done.returncode}):\n{done.stderr[-2000:]}") from None
    return {normalise(d["name"]): d for d in report.get("dependencies", [])}


def project_page(name: str) -> dict:
    url = PROJECT_URL.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (a fixed https URL)
            return dict(json.load(answer))
    except (urllib.error.URLError, TimeoutError) as exc:
        raise SystemExit(f"the registry did not answer for {name}: {exc}") from None


def ids_of(vuln: dict) -> set[str]:
    return {str(vuln.get("id", "")).upper(), *(str(a).upper() for a in vuln.get("aliases") or [])}


def main() -> int:
    pins = read_pins()
    exceptions = read_exceptions()
    verdicts = run_pip_audit()
    findings: list[str] = []
    reviewed: list[str] = []
    audited = 0
    for name, version in sorted(pins.items()):
        verdict = verdicts.get(name, {})
        vulns = verdict.get("vulns")
        if vulns is None:  # skipped by pip-audit: audit from the project page
            page = project_page(name)
            files = page.get("releases", {}).get(version)
            if files is None:
                findings.append(f"{name}=={version}: no such release on the registry")
                continue
            if files and all(f.get("yanked") for f in files):
                findings.append(f"{name}=={version}: the release is yanked")
            if page["info"]["version"] != version:
                if (name, version) in exceptions.unaudited:
                    reviewed.append(f"{name}=={version}: not the current release ({page['info']['version']}), "
                                    "cannot be audited here; reviewed exception")
                else:
                    findings.append(f"{name}=={version}: not the current release ({page['info']['version']}) "
                                    "and the registry gives no per-release data here: upgrade it or review it")
                continue
            vulns = [v for v in page.get("vulnerabilities") or [] if not v.get("withdrawn")]
        audited += 1
        for vuln in vulns:
            ids = ids_of(vuln)
            label = f"{name}=={version}: {vuln.get('id')} ({', '.join(sorted(ids - {str(vuln.get('id')).upper()}))})"
            if any((name, i) in exceptions.vulns for i in ids):
                reviewed.append(label + " — reviewed exception")
            else:
                fixed = ", ".join(vuln.get("fix_versions") or vuln.get("fixed_in") or []) or "no fix released"
                findings.append(f"{label}; fixed in: {fixed}")
    print(f"audited {audited} of {len(pins)} pinned packages in {CONSTRAINTS.name}")
    for line in reviewed:
        print("  reviewed: " + line)
    for line in findings:
        print("  FINDING:  " + line)
    if findings:
        print(f"{len(findings)} finding(s); fix them or record a reviewed exception in {EXCEPTIONS.relative_to(ROOT)}")
        return 1
    print("no known vulnerabilities outside the reviewed exceptions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
