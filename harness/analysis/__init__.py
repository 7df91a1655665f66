"""Analysis: pure functions from a Trace (arrays) to frozen verdict dataclasses.

``stats`` (robust slope, trend test), ``window`` (steady-state window), ``growth``
(growth verdicts), ``peak`` (peak verdicts), ``diagnose`` (incident 1's cases). No
probes, no files, no prose: the words are in ``harness.verdicts``.
"""
