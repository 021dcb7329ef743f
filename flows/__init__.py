"""Thin Prefect flows: they order tasks that call functions of the biggan package."""
