"""The HTTP server: FastAPI app factory, routes per resource, request limits. No SQL here."""
