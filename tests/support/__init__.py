"""Helpers for the test suite: live servers, fresh databases, venues with keys."""
