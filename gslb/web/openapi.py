"""The OpenAPI document of the JSON API (served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any

_OK = {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}
_AUTH = {"401": {"description": "missing or wrong bearer token (nothing changed)"},
         "403": {"description": "no token configured: writes disabled"}}
_SITE = {"name": "site", "in": "path", "required": True, "schema": {"type": "string"}}
_CHECK = {"name": "check", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "a check key, URL-encoded, e.g. http%3A%2F%2F192.0.2.10%3A80%2Fhealth"}


def document() -> dict[str, Any]:
    def read(summary: str) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": _OK}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "gslb dashboard API", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/api/health": read("probe verdicts per region and check, with the quorum decision"),
            "/api/sites": read("BGP state per site and prefix, sessions, drains"),
            "/api/nodes": read("DNS nodes: query rates and answer mix"),
            "/api/answers": read("GSLB names: pools, value health, the answer each region gets"),
            "/api/dataplane": read("XDP counters per VIP and backend"),
            "/api/log": {"get": {"summary": "the change log, newest last",
                                 "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                                 "responses": _OK}},
            "/api/events": {"get": {"summary": "server-sent events: which spaces changed",
                                    "responses": {"200": {"description": "text/event-stream"}}}},
            "/api/reload": {"post": {"summary": "every DNS node reloads its zones", "security": [{"bearer": []}],
                                     "responses": {**_OK, **_AUTH}}},
            "/api/sites/{site}/drain": {
                "post": {"summary": "drain a site (GRACEFUL_SHUTDOWN, then withdraw)", "parameters": [_SITE],
                         "security": [{"bearer": []}],
                         "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                             "reason": {"type": "string"}, "force": {"type": "boolean"}}}}}},
                         "responses": {**_OK, **_AUTH}},
                "delete": {"summary": "undrain a site", "parameters": [_SITE], "security": [{"bearer": []}],
                           "responses": {**_OK, **_AUTH}}},
            "/api/overrides/{check}": {
                "put": {"summary": "force a check up or down", "parameters": [_CHECK], "security": [{"bearer": []}],
                        "requestBody": {"required": True, "content": {"application/json": {"schema": {
                            "type": "object", "required": ["status"], "properties": {
                                "status": {"type": "string", "enum": ["up", "down"]},
                                "reason": {"type": "string"}}}}}},
                        "responses": {**_OK, **_AUTH, "400": {"description": "bad body"}}},
                "delete": {"summary": "clear an override", "parameters": [_CHECK], "security": [{"bearer": []}],
                           "responses": {**_OK, **_AUTH}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
        },
    }
