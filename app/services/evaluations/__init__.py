"""Evaluations: dual evaluations of village cadres, democratic evaluation of members, secretaries' appraisals."""
