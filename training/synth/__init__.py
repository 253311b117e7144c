"""Synthetic cohort: subjects with a structural LV-mass model, dipole ECGs, noise, known floor.

Modules: ``subjects`` (demographics, LV mass, label noise), ``phenotype`` (how mass and body act
on the dipole), ``dipole`` (Gaussian-wave VCG), ``leads`` (Dower projection, 12 leads),
``noise`` (electrode noise), ``cohort`` (generate + write), ``floor`` (floor, oracle, baselines),
``features`` (ECG measurements through the signal core), ``compare`` (synthetic vs real).
See docs/synthetic_cohort.md.
"""
