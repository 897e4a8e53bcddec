"""Zoning analysis (SPEC §7): the query, the per-zone metrics, and their text formats."""

from server.zoning.output import FORMATS, render, render_csv, render_json, render_table
from server.zoning.query import CLI_NAMING, HTTP_NAMING, Naming, ZoningQuery, parse_query
from server.zoning.report import KIND_PATH, Zone, ZoneAggregate, ZoningReport, build_report

__all__ = [
    "CLI_NAMING",
    "FORMATS",
    "HTTP_NAMING",
    "KIND_PATH",
    "Naming",
    "Zone",
    "ZoneAggregate",
    "ZoningQuery",
    "ZoningReport",
    "build_report",
    "parse_query",
    "render",
    "render_csv",
    "render_json",
    "render_table",
]
