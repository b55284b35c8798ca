"""The HTTP API over the archive and the search library (FastAPI app factory, one router per area)."""
