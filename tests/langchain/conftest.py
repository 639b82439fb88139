"""Fixtures for the LangChain adapter tests, shared with the LangGraph ones (support.scripted)."""

from support.scripted import aclient, anyio_backend, client, embedded_url, model, recorded, venue_id

__all__ = ["aclient", "anyio_backend", "client", "embedded_url", "model", "recorded", "venue_id"]
