"""Test helpers that ship with MASUKA: loopback fakes of the hosted APIs, sample media, the canary scan.

Nothing here is imported by the engines; the offline simulator (`python -m masuka_nb.testing.fakes`)
and the test-suite use it.
"""
