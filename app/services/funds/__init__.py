"""The funds area (保: money): `budgets` (lines, allocations, disbursements, the execution report) over `ledger`
(the conditional updates that move money on a line), `subsidies` (policies and entitlement runs) over
`entitlements` (who is owed what, computed set-based), and `dues` (party dues)."""
