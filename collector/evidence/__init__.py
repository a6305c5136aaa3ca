"""Tamper-evident audit evidence: the hash chain written with every record, the collector's
signing key, and signed audit bundles an auditor can verify without the database.

Kept import-free: the store imports `collector.evidence.chain`, and `export` imports the store.
"""
