"""Exports: tidy CSV tables, REDCap, FHIR bundle and a de-identified extract."""
