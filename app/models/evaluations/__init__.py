"""Evaluations (新): dual debriefing and dual evaluation of village cadres, democratic evaluation of
members with disposal cases, commendation candidates and the reserve cadre pool, and the secretaries'
quarterly assessments and year-end debriefing appraisal.

Scores are Decimal in the API and integer hundredths in the database; weights, vote points, grade
thresholds and the duty list are data with effective years (see `common.py`).
"""

from app.models.evaluations import common, dual, members, secretaries  # noqa: F401
