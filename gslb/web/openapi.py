"""The OpenAPI document of the JSON API (served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any

_OK = {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}
_ERROR = {"content": {"application/json": {"schema": {"type": "object", "properties": {
    "error": {"type": "string"}}}}}}
# 401 and 403 mean different things: 401 is this request's fault (send the right token and it
# works), 403 is the server's setting (no token configured: no request can write).
_AUTH = {"401": {"description": "Unauthorized: the request carries no `Authorization: Bearer <token>` header or "
                                "a wrong token. Nothing changed; retry with the server's token. "
                                "Comes with `WWW-Authenticate: Bearer realm=\"gslb\"`.", **_ERROR},
         "403": {"description": "Forbidden: the server was started without a token (GSLB_WEB_TOKEN or "
                                "--token-file), so the write API is disabled for everyone. Nothing changed; "
                                "no token helps until the server is restarted with one.", **_ERROR}}
_STORE = {"503": {"description": "the store cannot be reached (the error names it)", **_ERROR}}
_UNKNOWN_SITE = {"404": {"description": "no such site: the error lists the known ones (`known`); nothing changed",
                          **_ERROR}}
_SITE = {"name": "site", "in": "path", "required": True, "schema": {"type": "string"}}
_CHECK = {"name": "check", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "a check key, URL-encoded, e.g. http%3A%2F%2F192.0.2.10%3A80%2Fhealth"}
_SINCE = {"name": "since", "in": "query", "schema": {"type": "number", "default": -3600},
          "description": "Unix time in seconds, or a negative number: that many seconds before now"}


def _q(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, "description": description}


def _history(summary: str, description: str, *params: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "description": description, "parameters": [_SINCE, *params],
                    "responses": {**_OK, "400": {"description": "since/points not a number", **_ERROR}, **_STORE}}}


def document() -> dict[str, Any]:
    def read(summary: str) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": {**_OK, **_STORE}}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "gslb dashboard API", "version": "1",
                 "description": "Reads are open. Writes need `Authorization: Bearer <token>`: 401 means the "
                                "request's token is missing or wrong, 403 that the server has no token "
                                "configured and refuses every write. History is kept in the store, bounded "
                                "(about 2000 points and at most 6 hours per series)."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/api/health": read("probe verdicts per region and check, with the quorum decision"),
            "/api/sites": read("BGP state per site and prefix, sessions, drains"),
            "/api/nodes": read("DNS nodes: query rates and answer mix"),
            "/api/answers": read("GSLB names: pools, value health, the answer each region gets"),
            "/api/dataplane": read("XDP counters per VIP and backend"),
            "/api/status": {"get": {"summary": "whether this server accepts writes (and why not)",
                                    "responses": {"200": {"description": "{writes: bool, reason, store}"}}}},
            "/api/history/rtt": _history(
                "RTT over time per check and region",
                "One point per verdict a probe region wrote: `series: [{check, region, points: [[t, rtt_ms, up]]}]`, "
                "oldest first; `rtt_ms` is the region's smoothed RTT (null before any sample).",
                _q("check", "only this check key"), _q("region", "only this probe region"),
                _q("points", "at most this many points per series (time buckets, mean RTT)", "integer")),
            "/api/history/health": _history(
                "health timeline: up/down/stale bands per region and the quorum decision",
                "`checks: {check: {regions: {region: [[start, end, state]]}, quorum: [[start, end, state]]}}`; "
                "a region's state is up/down while its verdict is fresh, stale after it expired; the quorum "
                "state is up, down or unknown (no fresh verdict: answers fail open), with ` (override)` "
                "when an operator override decided it.",
                _q("check", "only this check key")),
            "/api/history/nodes": _history(
                "DNS nodes: query rate and rcode mix over time",
                "`nodes: {node: {points: [[t, qps, {rcode: answers per second}]]}}`, one point per node report.",
                _q("node", "only this node")),
            "/api/history/bgp": _history(
                "BGP state changes per site",
                "`sites: {site: {changes: [{t, healthy, prefixes: {prefix: state}, reasons, peers, gone?}]}}`: "
                "a point only when a state changes; the first one (`before: true`) is the state in force at "
                "`since`.",
                _q("site", "only this site")),
            "/api/log": {"get": {"summary": "the change log, newest last",
                                 "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                                 "responses": {**_OK, **_STORE}}},
            "/api/events": {"get": {"summary": "server-sent events: which spaces changed",
                                    "responses": {"200": {"description": "text/event-stream"}}}},
            "/api/reload": {"post": {"summary": "every DNS node reloads its zones", "security": [{"bearer": []}],
                                     "responses": {**_OK, **_AUTH, **_STORE}}},
            "/api/sites/{site}/drain": {
                "post": {"summary": "drain a site (GRACEFUL_SHUTDOWN, then withdraw)", "parameters": [_SITE],
                         "security": [{"bearer": []}],
                         "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                             "reason": {"type": "string"}, "force": {"type": "boolean"}}}}}},
                         "description": "Only a site the store knows (publishing its state, or drained) can be "
                                        "drained; repeating a drain changes nothing and says so (`changed: false`).",
                         "responses": {**_OK, **_AUTH, **_UNKNOWN_SITE, **_STORE}},
                "delete": {"summary": "undrain a site", "parameters": [_SITE], "security": [{"bearer": []}],
                           "description": "Undraining a site that is not drained changes nothing and says so "
                                          "(`changed: false`).",
                           "responses": {**_OK, **_AUTH, **_UNKNOWN_SITE, **_STORE}}},
            "/api/overrides/{check}": {
                "put": {"summary": "force a check up or down", "parameters": [_CHECK], "security": [{"bearer": []}],
                        "description": "Setting the status an override already has changes nothing and says so "
                                       "(`changed: false`).",
                        "requestBody": {"required": True, "content": {"application/json": {"schema": {
                            "type": "object", "required": ["status"], "properties": {
                                "status": {"type": "string", "enum": ["up", "down"]},
                                "reason": {"type": "string"}}}}}},
                        "responses": {**_OK, **_AUTH, "400": {"description": "bad body", **_ERROR},
                                      "404": {"description": "no probe verdict, published answer or override names "
                                                             "this check; `known` lists the checks that exist",
                                              "content": {"application/json": {"schema": {
                                                  "type": "object", "properties": {
                                                      "error": {"type": "string"},
                                                      "known": {"type": "array", "items": {"type": "string"}}}}}}},
                                      **_STORE}},
                "delete": {"summary": "clear an override", "parameters": [_CHECK], "security": [{"bearer": []}],
                           "description": "Clearing an override that is not set changes nothing and says so "
                                          "(`changed: false`).",
                           "responses": {**_OK, **_AUTH, **_STORE}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
        },
    }
