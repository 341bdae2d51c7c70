"""Query builders for scoped keyword and vector search, used by the stores that own the tables."""
