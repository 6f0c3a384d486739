"""Readers for the real vision-and-language formats (see docs/vl-contract.md)."""
