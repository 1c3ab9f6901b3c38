"""Conditions and rules: parser, IR, evaluators."""
