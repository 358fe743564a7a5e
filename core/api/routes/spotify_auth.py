"""Sign in with Spotify: ``GET /auth/spotify`` and ``GET /auth/spotify/callback`` (Authorization Code + PKCE).

authlib's Starlette client builds the authorize URL (with a PKCE S256 challenge and a random ``state``) and
exchanges the code; the pending request is kept server-side (``core.spotify.sign_in.begin``): single-use,
short-lived and bound to the browser that started it. What happens with the Spotify account (link, sign in,
create a user, refuse) is decided in ``core.spotify.sign_in``. Every failure ends on a page with a message;
nothing is created then.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from core.api.deps import SessionDep, SettingsDep, browser_session, cookie_user, login_limit, safe_next, sign_in_browser
from core.security import SecretBox
from core.settings import Settings
from core.spotify import sign_in

log = logging.getLogger("stemforge.spotify")
router = APIRouter(prefix="/auth/spotify", tags=["accounts"])

_clients: dict[tuple[str, ...], StarletteOAuth2App] = {}


def _spotify(settings: Settings) -> StarletteOAuth2App:
    """authlib's client for these settings (one per set of credentials and URLs)."""
    accounts = settings.spotify_accounts_url.rstrip("/")
    key = (settings.spotify_client_id, settings.spotify_client_secret, accounts, settings.spotify_api_url)
    client = _clients.get(key)
    if client is None:
        oauth = OAuth()
        client = oauth.register(
            "spotify", client_id=settings.spotify_client_id, client_secret=settings.spotify_client_secret,
            authorize_url=accounts + "/authorize", access_token_url=accounts + "/api/token",
            api_base_url=settings.spotify_api_url.rstrip("/") + "/",
            client_kwargs={"scope": " ".join(sign_in.SCOPES), "code_challenge_method": "S256",
                           "timeout": settings.spotify_timeout_s})
        _clients[key] = client
    return client


def _page(path: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}{query}" if query else path, status_code=303)


@router.get("", response_class=RedirectResponse, status_code=302, dependencies=[Depends(login_limit)],
            responses={302: {"description": "To Spotify's authorize page"},
                       303: {"description": "Back to the log-in page when Spotify is not configured"}})
async def start(request: Request, session: SessionDep, settings: SettingsDep,
                next: str | None = None) -> RedirectResponse:  # noqa: A002
    """Sends the browser to Spotify to sign in (signed out) or to link the account (signed in); Spotify
    sends it back to `/auth/spotify/callback`, which then goes on to `next` (a path on this site; default:
    the library after a sign-in, the settings after a link)."""
    if not settings.spotify_client_id or not settings.spotify_client_secret:
        return _page("/users/log-in", error="Sign-in with Spotify is not set up on this server.")
    sess = browser_session(request)
    if sess is None:  # a browser that refuses cookies cannot finish the round trip
        return _page("/users/log-in", error="Your browser did not keep StemForge's cookie; allow cookies and retry.")
    user = await cookie_user(request, session)
    rv = await _spotify(settings).create_authorization_url(settings.spotify_callback_url)
    await sign_in.begin(session, SecretBox(settings.fernet_key), state=rv["state"], code_verifier=rv["code_verifier"],
                        browser_key=sess.csrf, user_id=user.id if user else None,
                        next_path=safe_next(next) if next or user is None else "/users/settings",
                        ttl_s=settings.spotify_oauth_state_ttl_s)
    return RedirectResponse(rv["url"], status_code=302)


def _denied(error: str, description: str | None) -> str:
    if error == "access_denied":
        return "You cancelled the Spotify sign-in; nothing was changed."
    return f"Spotify refused the sign-in ({error}{': ' + description if description else ''})."


async def _exchange(settings: Settings, code: str, verifier: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token for ``code`` and the account's ``/v1/me``; ``SignInRefused`` with the reason otherwise."""
    client = _spotify(settings)
    try:
        token = await client.fetch_access_token(redirect_uri=settings.spotify_callback_url, code=code,
                                                code_verifier=verifier)
        response = await client.get("me", token=token)
    except OAuthError as exc:
        raise sign_in.SignInRefused(f"Spotify did not accept the sign-in ({exc.error}"
                                    f"{': ' + exc.description if exc.description else ''}); try again.") from exc
    except httpx.HTTPError as exc:
        raise sign_in.SignInRefused(f"Could not reach Spotify ({exc.__class__.__name__}); try again later.") from exc
    if response.status_code != 200:
        raise sign_in.SignInRefused(f"Spotify did not tell who signed in (HTTP {response.status_code}); try again.")
    return dict(token), response.json()


@router.get("/callback", response_class=RedirectResponse, status_code=303,
            responses={303: {"description": "Signed in (to `next`), linked (to the settings), or back to the "
                                            "log-in page with the reason in `error`"}})
async def callback(request: Request, session: SessionDep, settings: SettingsDep, code: str | None = None,
                   state: str | None = None, error: str | None = None,
                   error_description: str | None = None) -> RedirectResponse:
    """Where Spotify sends the browser back: exchanges the code, then links, signs in or creates the user."""
    box = SecretBox(settings.fernet_key)
    sess = browser_session(request)
    user = await cookie_user(request, session)
    failed_page = "/users/settings" if user else "/users/log-in"
    try:
        pending = await sign_in.consume(session, box, state=state, browser_key=sess.csrf if sess else "")
        if error:
            raise sign_in.SignInRefused(_denied(error, error_description))
        if not code:
            raise sign_in.SignInRefused("Spotify sent no authorization code back; try again.")
        if pending.intent == sign_in.LINK and (user is None or user.id != pending.user_id):
            raise sign_in.SignInRefused("You were signed out during the Spotify link; log in and link again.")
        token, me = await _exchange(settings, code, pending.code_verifier)
        profile = sign_in.profile_from_me(me)
        if pending.intent == sign_in.LINK and user is not None:
            await sign_in.link(session, box, user, profile, token)
            return _page(pending.next_path, notice=f"Spotify account {profile.display_name} linked.")
        signed_in, created = await sign_in.sign_in(session, box, profile, token)
    except sign_in.SignInRefused as exc:
        log.info("Spotify sign-in refused: %s", exc.message)
        if user is not None and exc.code == sign_in.STATE_USED:
            # Back button or a reopened callback after a finished sign-in: nothing happened, nothing is wrong.
            return _page("/users/settings", notice="That Spotify sign-in was already completed; nothing changed.")
        return _page(failed_page, error=exc.message)
    target = "/users/settings?" + urlencode({"notice": "Welcome! You signed in with Spotify; set a password here "
                                                       "if you want to log in without it."}) if created \
        else pending.next_path
    return sign_in_browser(request, RedirectResponse(target, status_code=303), signed_in)  # type: ignore[return-value]
