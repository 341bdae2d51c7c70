"""Operator commands and maintenance: doctor, migrate, re-embedding, policies, the embedded server."""
