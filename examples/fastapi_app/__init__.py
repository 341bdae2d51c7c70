"""A production-shaped FastAPI service on Engram (see README.md beside this file)."""
