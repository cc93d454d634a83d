"""WHIP ingest (RFC 9725) at ``/whip/{stream}`` and WHEP playback at ``/whep/{stream}``.

One HTTP exchange per session: POST an SDP offer, get ``201`` with the answer (our ICE
candidates inside, no trickle), a ``Location`` to DELETE, and the ICE servers as ``Link``
headers. Browsers call these across origins (OBS does not care), hence the CORS headers.

A process that does not hold a stream's media serves its viewers from a pull: WHEP to the
holder's ``/internal/media/whep/{stream}``, which other processes alone may use (the shared
internal secret as Bearer token): no quota per address, never pulled in turn. A WHIP ``DELETE``
reaching a process without that session is sent on to the holder's
``/internal/media/whip/{stream}/{resource}``, once the stream key was checked here; a WHEP
``DELETE`` for a viewer another process serves (recorded in Redis, see ``media.routing``) to
that process's ``/internal/media/whep/{stream}/{resource}``.
"""

from __future__ import annotations

import hmac
import math
from typing import NoReturn, Protocol

from aiohttp import web

from livecommerce.errors import ErrorCode, LiveCommerceError, error_response
from livecommerce.media.addressquota import TooManySessions
from livecommerce.media.hub import MEDIA, AlreadyPublishing, AtCapacity
from livecommerce.media.rtc.relay import StreamNotLive
from livecommerce.media.rtc.sessions import OfferRejected, PublisherSession, ViewerSession
from livecommerce.platform.clientaddress import client_address
from livecommerce.platform.openapi import Operation
from livecommerce.platform.payload import path_id

SDP = "application/sdp"
MAX_SDP = 64 * 1024
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Location, Link",
}


class StreamGate(Protocol):
    """What the handlers must know of a shopstream. Shopstreams are the live domain's, which
    media does not import: the composition root puts one under ``STREAM_GATE``."""

    async def key_matches(self, stream_id: int, presented: str) -> bool:
        """Whether ``presented`` is the stream's current key (compared in constant time).
        Raises ``NotFound`` for no such stream."""
        ...

    async def has_ended(self, stream_id: int) -> bool:
        """Whether the show is over. Raises ``NotFound`` for no such stream."""
        ...


STREAM_GATE: web.AppKey[StreamGate] = web.AppKey("stream_gate")


def _ice_links(request: web.Request) -> dict[str, str]:
    """RFC 9725 section 4.6: each STUN/TURN server as ``Link: <url>; rel="ice-server"``."""
    links = []
    for server in request.app[MEDIA].ice_servers():
        link = f'<{server.urls}>; rel="ice-server"'
        if server.username:
            link += f'; username="{server.username}"; credential="{server.credential}"'
            link += '; credential-type="password"'
        links.append(link)
    return {"Link": ", ".join(links)} if links else {}


async def _offer(request: web.Request) -> str:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != SDP:
        raise LiveCommerceError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"send the SDP offer as {SDP}, not {content_type!r}"
        )
    if request.content_length is not None and request.content_length > MAX_SDP:
        raise LiveCommerceError(ErrorCode.PAYLOAD_TOO_LARGE, "that SDP offer is too large")
    # read() returns what has arrived so far: an offer sent in several pieces (chunked, or
    # split across TCP segments) is read to its end, but never beyond the limit.
    body = bytearray()
    while chunk := await request.content.read(MAX_SDP + 1 - len(body)):
        body += chunk
        if len(body) > MAX_SDP:
            break
    if len(body) > MAX_SDP:
        raise LiveCommerceError(ErrorCode.PAYLOAD_TOO_LARGE, "that SDP offer is too large")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise LiveCommerceError(ErrorCode.INVALID_SDP, "the SDP offer is not UTF-8") from None
    if not text.startswith("v=0"):
        raise LiveCommerceError(ErrorCode.INVALID_SDP, "that is not an SDP offer (no v=0 line)")
    return text


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise LiveCommerceError(
            ErrorCode.NOT_AUTHENTICATED, "send the stream key as Authorization: Bearer <key>"
        )
    return token.strip()


async def _check_key(request: web.Request, stream_id: int) -> None:
    if not await request.app[STREAM_GATE].key_matches(stream_id, _bearer(request)):
        raise LiveCommerceError(ErrorCode.NOT_AUTHENTICATED, "wrong stream key")


async def _check_publisher(request: web.Request, stream_id: int) -> None:
    """The publisher's key is the stream's current one and the show has not ended."""
    await _check_key(request, stream_id)
    if await request.app[STREAM_GATE].has_ended(stream_id):
        raise LiveCommerceError(ErrorCode.INVALID_TRANSITION, "this show has ended")


def _created(request: web.Request, answer: str, resource: str) -> web.Response:
    # ``body`` rather than ``text``: application/sdp defines no charset parameter (RFC 4566).
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type=SDP,
        headers={"Location": f"{request.path}/{resource}", **CORS, **_ice_links(request)},
    )


async def post_whip(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    await _check_publisher(request, stream_id)
    offer = await _offer(request)
    media = request.app[MEDIA]
    try:
        answer, resource = await media.publish(stream_id, offer)
    except AlreadyPublishing:
        raise LiveCommerceError(
            ErrorCode.ALREADY_PUBLISHING,
            "this stream already has a publisher; end that session (DELETE) first",
        ) from None
    except StreamNotLive:
        raise LiveCommerceError(ErrorCode.INVALID_TRANSITION, "this show has ended") from None
    except OfferRejected as exc:
        raise LiveCommerceError(ErrorCode.INVALID_SDP, str(exc)) from None
    try:
        # The key may have been rotated, or the show ended, while we negotiated: the cut-off
        # they send may have found no publisher here yet.
        await _check_publisher(request, stream_id)
    except BaseException:
        await media.end(resource)
        raise
    return _created(request, answer, resource)


async def post_whep(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    offer = await _offer(request)
    media = request.app[MEDIA]
    elsewhere = await media.elsewhere(stream_id, request.path_qs)
    if elsewhere is not None:
        # The stream's media lives on another process: play it there (307 keeps the POST).
        raise web.HTTPTemporaryRedirect(elsewhere, headers=CORS)
    try:
        answer, resource = await media.play(stream_id, offer, client_address(request))
    except StreamNotLive:
        await _offline(request, stream_id)
    except TooManySessions as exc:
        response = error_response(
            LiveCommerceError(
                ErrorCode.TOO_MANY_SESSIONS,
                f"this address already watches with {exc.limit} sessions; end one first",
            )
        )
        response.headers.update(CORS)
        response.headers["Retry-After"] = str(math.ceil(media.connect_timeout))
        return response
    except AtCapacity as exc:
        response = error_response(
            LiveCommerceError(
                ErrorCode.MEDIA_AT_CAPACITY,
                f"this server cannot take another viewer now ({exc.reason}); try again later",
            )
        )
        response.headers.update(CORS)
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
        return response
    except OfferRejected as exc:
        raise LiveCommerceError(ErrorCode.INVALID_SDP, str(exc)) from None
    return _created(request, answer, resource)


async def _offline(request: web.Request, stream_id: int) -> NoReturn:
    """Why there is nothing to watch: no such stream (404), or it is not on air (409)."""
    if await request.app[STREAM_GATE].has_ended(stream_id):
        raise LiveCommerceError(ErrorCode.STREAM_OFFLINE, "this show has ended")
    raise LiveCommerceError(
        ErrorCode.STREAM_OFFLINE, "this stream is not on air; try again when it is"
    )


async def delete_session(request: web.Request) -> web.Response:
    stream_id = path_id(request, what="stream")
    resource = request.match_info["resource"]
    media = request.app[MEDIA]
    found = media.session(resource)
    if found is None and request.path.startswith("/whip/"):
        # Held by another process (a load balancer chose this one): end it there.
        await _check_key(request, stream_id)
        if await media.end_elsewhere(stream_id, resource):
            return web.Response(status=200, headers=CORS)
    elif found is None and await media.end_viewer_elsewhere(stream_id, resource):
        return web.Response(status=200, headers=CORS)  # a viewer another process serves
    if found is None or found[0] != stream_id:
        raise LiveCommerceError(ErrorCode.NOT_FOUND, "no such session (it may have ended)")
    if isinstance(found[1], PublisherSession):
        await _check_key(request, stream_id)  # only the publisher may end the broadcast
    await media.end(resource)
    return web.Response(status=200, headers=CORS)


async def _check_internal(request: web.Request) -> None:
    """Only the processes sharing the internal secret may use the internal endpoints."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    secret = await request.app[MEDIA].routing.secret()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), secret):
        raise LiveCommerceError(
            ErrorCode.NOT_AUTHENTICATED, "internal media endpoint: send the internal secret"
        )


async def post_internal_whep(request: web.Request) -> web.Response:
    """Another process pulls this process's stream for its own viewers."""
    await _check_internal(request)
    stream_id = path_id(request, what="stream")
    offer = await _offer(request)
    try:
        answer, resource = await request.app[MEDIA].play(stream_id, offer, None)
    except StreamNotLive:
        raise LiveCommerceError(
            ErrorCode.STREAM_OFFLINE, "this process does not hold that stream on air"
        ) from None
    except OfferRejected as exc:
        raise LiveCommerceError(ErrorCode.INVALID_SDP, str(exc)) from None
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type=SDP,
        headers={"Location": f"{request.path}/{resource}"},
    )


async def delete_internal_session(request: web.Request) -> web.Response:
    """End a pull, or (sent on by another process, which checked the key) a publisher."""
    await _check_internal(request)
    stream_id = path_id(request, what="stream")
    media = request.app[MEDIA]
    found = media.session(request.match_info["resource"])
    want = PublisherSession if request.path.startswith("/internal/media/whip/") else ViewerSession
    if found is None or found[0] != stream_id or not isinstance(found[1], want):
        raise LiveCommerceError(ErrorCode.NOT_FOUND, "no such session (it may have ended)")
    await media.end(request.match_info["resource"])
    return web.json_response({"ended": True})


async def options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={**CORS, **_ice_links(request)})


async def patch_session(request: web.Request) -> web.Response:
    # Trickle ICE and ICE restarts are not offered: the answer carries every candidate.
    raise LiveCommerceError(
        ErrorCode.METHOD_NOT_ALLOWED, "trickle ICE is not supported; send a new offer"
    )


_ID = r"{id:\d+}"
_RESOURCE = "{resource:[A-Za-z0-9_-]+}"
OPERATIONS = (
    Operation(
        "POST",
        f"/whip/{_ID}",
        post_whip,
        "WHIP: publish a stream (stream key as Bearer token); answers SDP",
        "media",
        status=201,
        raw_body=SDP,
        response_type=SDP,
        errors=(400, 401, 404, 409, 413, 415),
    ),
    Operation(
        "OPTIONS", f"/whip/{_ID}", options, "CORS preflight; ICE servers", "media", status=204
    ),
    Operation(
        "DELETE",
        f"/whip/{_ID}/{_RESOURCE}",
        delete_session,
        "WHIP: end the broadcast (stream key as Bearer token), on whichever process holds it",
        "media",
        errors=(401, 404, 503),
    ),
    Operation("PATCH", f"/whip/{_ID}/{_RESOURCE}", patch_session, "No trickle ICE", "media"),
    Operation(
        "OPTIONS", f"/whip/{_ID}/{_RESOURCE}", options, "CORS preflight", "media", status=204
    ),
    Operation(
        "POST",
        f"/whep/{_ID}",
        post_whep,
        "WHEP: watch a stream; answers SDP (307 to the process holding it if WHEP_REDIRECT)",
        "media",
        status=201,
        raw_body=SDP,
        response_type=SDP,
        errors=(400, 404, 409, 413, 415, 429, 503),
    ),
    Operation(
        "OPTIONS", f"/whep/{_ID}", options, "CORS preflight; ICE servers", "media", status=204
    ),
    Operation(
        "DELETE",
        f"/whep/{_ID}/{_RESOURCE}",
        delete_session,
        "WHEP: stop watching, on whichever process serves the session",
        "media",
        errors=(404, 503),
    ),
    Operation("PATCH", f"/whep/{_ID}/{_RESOURCE}", patch_session, "No trickle ICE", "media"),
    Operation(
        "OPTIONS", f"/whep/{_ID}/{_RESOURCE}", options, "CORS preflight", "media", status=204
    ),
    Operation(
        "POST",
        f"/internal/media/whep/{_ID}",
        post_internal_whep,
        "Internal WHEP between processes (the internal secret as Bearer token); answers SDP",
        "media",
        status=201,
        raw_body=SDP,
        response_type=SDP,
        errors=(400, 401, 404, 409, 413, 415),
    ),
    Operation(
        "DELETE",
        f"/internal/media/whep/{_ID}/{_RESOURCE}",
        delete_internal_session,
        "Internal: end a pull (the internal secret as Bearer token)",
        "media",
        errors=(401, 404),
    ),
    Operation(
        "DELETE",
        f"/internal/media/whip/{_ID}/{_RESOURCE}",
        delete_internal_session,
        "Internal: end a publisher session sent on by another process (internal secret)",
        "media",
        errors=(401, 404),
    ),
)
