"""Specifications: pack and company definitions, field types, effects, loading, diagnostics."""
