// What a front end writes against the generated types (generated/api.d.ts, from openapi/openapi.json by
// openapi-typescript). `tsc --noEmit` must accept it: when the contract renames a schema, drops a field or
// changes a type that front ends rely on, this file stops compiling. tests/test_generated_clients.py runs it.
import type { components, operations, paths } from "./generated/api";

type Schemas = components["schemas"];
type JsonOf<Op> = Op extends { responses: { 200: { content: { "application/json": infer T } } } } ? T : never;

// Log in: the form the OAuth2 password grant sends, and the token pair it answers.
type LoginForm = NonNullable<operations["auth_token"]["requestBody"]>["content"]["application/x-www-form-urlencoded"];
const login: LoginForm = { grant_type: "password", username: "lucheng_admin", password: "kangding-demo-2019" };
export async function logIn(base: string, form: LoginForm = login): Promise<Schemas["TokenPair"]> {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(form)) if (typeof value === "string") body.set(key, value);
  const res = await fetch(`${base}/api/v1/auth/token`, { method: "POST", body });
  if (!res.ok) throw problem(await res.json());
  return (await res.json()) as Schemas["TokenPair"];
}

// Every error is an RFC 9457 problem with a stable code.
function problem(doc: Schemas["Problem"]): Error {
  return new Error(`${doc.status} ${doc.code}: ${doc.detail ?? doc.title}`);
}

// A list: query parameters typed from the operation, the page envelope named OrganizationPage.
type OrgQuery = NonNullable<operations["organizations_list"]["parameters"]["query"]>;
export async function organisations(base: string, token: string, query: OrgQuery): Promise<Schemas["OrganizationPage"]> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== null) params.set(key, String(value));
  const res = await fetch(`${base}/api/v1/organizations?${params}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw problem(await res.json());
  const page: JsonOf<operations["organizations_list"]> = await res.json();
  return page;
}

export function villageNames(page: Schemas["OrganizationPage"]): string[] {
  return page.items.filter((org) => org.level === "village").map((org) => `${org.name} (${org.code ?? "no code"})`);
}

// Open a problem, then follow its status through the workflow.
export const opened: Schemas["ProblemCreate"] = {
  org_id: 4, year: 2026, source: "quarterly_inspection", description: "会议记录不全", deadline: "2026-06-30",
};
type VerifyPath = paths["/api/v1/problems/{problem_id}/verify"]["post"]["parameters"]["path"];
export const verifyPath: VerifyPath = { problem_id: 1 };

export function nextStep(problem: Schemas["ProblemDetail"]): string {
  switch (problem.status) {
    case "open": return "rectify";
    case "rectifying": return "submit";
    case "submitted": return problem.rejection_count > 0 ? "verify again" : "verify";
    case "verified": return "done";
  }
}

// The audit log an auditor reads, and the chain check.
export function describe(row: Schemas["AuditLogPublic"]): string {
  return `${row.at} ${row.username ?? "system"} ${row.action} ${row.entity}#${row.entity_id ?? "-"} ${row.hash.slice(0, 8)}`;
}
export function chainIntact(v: Schemas["AuditVerification"]): boolean {
  return v.ok && v.first_broken_id == null;
}

// The compiler really checks: each line below must be an error (an unused @ts-expect-error fails the build).
// @ts-expect-error  "closed" is not a ProblemStatus
export const wrongStatus: Schemas["ProblemDetail"]["status"] = "closed";
// @ts-expect-error  org_id is required when opening a problem
export const missingOrg: Schemas["ProblemCreate"] = { year: 2026, source: "other", description: "x" };
