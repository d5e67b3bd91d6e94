"""Standardisation (标准化建设): the catalogue, audits against it, venues and organisational life.

catalogue.py  standard sets and items (draft → published → retired, new versions)
audits.py     self-assessments and reviews, scores, ratings, the backward → problem link, summary, compare
venues.py     facility types, facilities, construction investments, the venues summary
meetings.py   required frequencies, meeting records, compliance
"""

from app.services.standards import audits, catalogue, meetings, venues

__all__ = ["audits", "catalogue", "meetings", "venues"]
