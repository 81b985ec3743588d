"""Evaluate: turn registry records into answers — study analyses, evidence synthesis, reports.

Reads the tidy tables (:mod:`cryoneuro.analysis.tidy`), never the registry itself, so a trial
team can run it on an export, a REDCap extract reshaped to the same columns, or synthetic data.
"""
