"""The live board and an incident's scene: what the console's board and map draw, as API."""

from __future__ import annotations

from aiohttp import web

from dispatch.service.board_hub import board as build_board
from dispatch.store import board as board_store
from dispatch.web import app_keys as keys
from dispatch.web.handlers import readable_incident
from dispatch.web.params import supervisor

routes = web.RouteTableDef()


@routes.get("/v1/agencies/{agency_id}/board")
async def live_board(request: web.Request) -> web.Response:
    agency_id, _ = await supervisor(request)
    found = await build_board(request.app[keys.POOL], request.app[keys.CLOCK], agency_id)
    return web.json_response(found)


@routes.get("/v1/incidents/{incident_id}/scene")
async def incident_scene(request: web.Request) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        incident_id = await readable_incident(request, conn)
        found = await board_store.scene(conn, incident_id)
    return web.json_response(found)
