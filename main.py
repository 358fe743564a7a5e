"""StemForge: composition root and command line.

    python main.py                      serve on the embedded defaults (same as `serve`)
    python main.py serve [--host H] [--port P]   also supervises one embedded worker process
    python main.py worker [--workers N]         job workers alone (N processes, each restarted if it dies)
    python main.py users create --email E --password P
    python main.py tokens create --email E [--name N]   prints only the token
    python main.py tokens list --email E
    python main.py tokens revoke --email E --id TOKEN_ID
    python main.py models                        the separation models and whether their weights are here
    python main.py models fetch NAME             download a model's weights ahead of use
    python main.py separate FILE [--model M] [--out DIR] [--format wav|flac|mp3]   stems, with a progress bar
    python main.py analyze FILE [--features tempo key ...] [--tempo-range MIN MAX] [--indent N]   the analysis as JSON
    python main.py mix STEM_FILE... --manifest FILE -o OUT.wav   render an edit manifest (stems by file_index)
    python main.py mix TRACK_ID --manifest FILE -o OUT.wav        ... or a stored track's stems (by stem_id)
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_app(settings: Settings):  # noqa: ANN201  (FastAPI, imported lazily: the CLI should start fast)
    """The one web application: REST + /socket + NiceGUI pages."""
    from core.api.app import create_app
    from ui.app import attach

    app = create_app(settings)
    attach(app, settings)
    return app


def serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    if host:
        settings.host = host
    if port:
        settings.port = port
    app = build_app(settings)
    embedded = None
    if settings.embedded_worker:
        import os

        from workers.supervisor import Supervisor

        # The worker reads the same STEMFORGE_* environment; it exits by itself if this process vanishes.
        embedded = Supervisor([sys.executable, str(Path(__file__).resolve()), "worker", "--parent-pid",
                               str(os.getpid())], name="embedded worker").start()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                    proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    finally:
        if embedded is not None:
            embedded.stop()


def worker(settings: Settings, workers: int, parent_pid: int | None) -> int:
    from workers.process import run_pool, run_worker

    if workers > 1:
        return run_pool(settings, workers)
    return run_worker(settings, parent_pid)


async def _with_db(settings: Settings, fn: Callable[[Any], Awaitable[int]]) -> int:
    from core.lifecycle import startup
    from data.db import dispose_engine, session_scope

    await startup(settings)
    try:
        async with session_scope() as session:
            return await fn(session)
    finally:
        await dispose_engine()


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


async def _users_create(session: Any, args: argparse.Namespace, settings: Settings) -> int:
    from core import accounts
    from core.errors import StemForgeError

    try:
        user = await accounts.register(session, args.email, args.password, min_length=settings.password_min_length)
    except StemForgeError as exc:
        return _fail(exc.message)
    print(f"created user {user.email} ({user.id})")
    return 0


async def _tokens(session: Any, args: argparse.Namespace, settings: Settings) -> int:
    from core import accounts
    from core.errors import StemForgeError

    try:
        user = await accounts.get_user_by_email(session, args.email)
        if args.tokens_cmd == "create":
            issued = await accounts.create_token(session, user, args.name)
            print(issued.token)  # stdout holds the token alone: scripts capture it
        elif args.tokens_cmd == "list":
            for row in await accounts.list_tokens(session, user):
                print(f"{row.id}  {row.prefix}…  {row.name or '-'}  created {row.created_at:%Y-%m-%d %H:%M}")
        else:
            try:
                token_id = uuid.UUID(args.id)
            except ValueError:
                return _fail(f"not a token id: {args.id}")
            await accounts.revoke_token(session, user, token_id)
            print(f"revoked {token_id}", file=sys.stderr)
    except StemForgeError as exc:
        return _fail(exc.message)
    return 0


def analyze_file(path: str, features: list[str] | None, indent: int | None,
                 tempo_range: tuple[float, float] | None = None) -> int:
    """``analyze FILE``: the analysis result as JSON on stdout; a fault as one line on stderr."""
    import json

    from core.analysis import analyze
    from core.errors import StemForgeError
    from core.progress import BadInput

    try:
        result = analyze(path, features, tempo_range=tempo_range)
    except StemForgeError as exc:
        return _fail(exc.message)
    except BadInput as exc:
        return _fail(str(exc))
    print(json.dumps(result, indent=indent))
    return 0


def models_command(args: argparse.Namespace, settings: Settings) -> int:
    """``models``: the catalogue and whether each model's weights are here; ``models fetch NAME``."""
    from pathlib import Path

    from core.progress import BadInput
    from core.separation import catalog, weights

    repo = Path(settings.demucs_repo).expanduser() if settings.demucs_repo else None
    try:
        if args.models_cmd == "fetch":
            print(weights.fetch(args.name, repo))
            return 0
        present = weights.presence(repo)
    except BadInput as exc:
        return _fail(str(exc))
    for info in catalog.MODELS:
        print(f"{info.name:<12} {info.stems} stems  {'present' if present[info.name] else 'missing':<8} "
              f"{info.description}")
    print(f"weights looked up in {repo or 'the demucs download cache'}", file=sys.stderr)
    return 0


def separate_file(args: argparse.Namespace, settings: Settings) -> int:
    """``separate FILE``: the local engine on one file, a progress bar on stderr, stem paths on stdout."""
    from pathlib import Path

    from tqdm import tqdm

    from core.progress import BadInput
    from core.separation.local import LocalEngine

    source = Path(args.file)
    out_dir = Path(args.out) if args.out else Path("separated") / args.model / source.stem
    with tqdm(total=100, unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]") as bar:

        def progress(percent: float, message: str = "") -> None:
            bar.set_description_str(message or "Separating", refresh=False)
            bar.update(max(0.0, percent - bar.n))

        try:
            stems = LocalEngine(settings).separate(source, out_dir, args.model, progress, fmt=args.format)
        except BadInput as exc:
            bar.leave = False
            bar.close()
            return _fail(str(exc))
    for stem in stems:
        print(stem.path)
    return 0


async def _track_stem_files(settings: Settings, track_id: uuid.UUID, manifest: Any) -> list[Any]:
    """The stored stems of a track that ``manifest`` names by ``stem_id`` (the CLI is the admin's: any user)."""
    from core.daw.sources import audio_of, referenced_stems, track_stems
    from core.errors import NotFound
    from data.files import FileStore
    from data.models import Track

    result: list[Any] = []

    async def load(session: Any) -> int:
        track = await session.get(Track, track_id)
        if track is None:
            raise NotFound("track")
        rows = referenced_stems(manifest, await track_stems(session, track.user_id, track.id), allow_files=False)
        result.extend(await audio_of(FileStore(settings.uploads_dir), rows))
        return 0

    await _with_db(settings, load)
    return result


def mix_command(args: argparse.Namespace, settings: Settings) -> int:
    """``mix``: render an edit manifest to a 24-bit WAV without the server, with a progress bar on stderr."""
    from tqdm import tqdm

    from core.daw.export import bind_files, write_mix
    from core.daw.manifest import ManifestInvalid, check_timeline, parse_manifest
    from core.daw.mixdown import Mixdown
    from core.errors import StemForgeError

    if Path(args.out).suffix.lower() != ".wav":
        return _fail(f"{args.out}: the mix is a 24-bit WAV file; name it .wav")
    try:
        manifest = parse_manifest(Path(args.manifest).read_bytes())
        track_id = None
        if len(args.sources) == 1 and not Path(args.sources[0]).exists():
            try:
                track_id = uuid.UUID(args.sources[0])
            except ValueError:
                return _fail(f"no such file: {args.sources[0]}")
        if track_id is not None:
            if manifest.track_id is not None and manifest.track_id != track_id:
                return _fail(f"the manifest is for track {manifest.track_id}, not {track_id}")
            import asyncio

            audios = asyncio.run(_track_stem_files(settings, track_id, manifest))
        else:
            missing = [s for s in args.sources if not Path(s).is_file()]
            if missing:
                return _fail(f"no such file: {missing[0]}")
            audios = bind_files(manifest, [Path(s) for s in args.sources])
        mixdown = Mixdown(manifest, audios)
        check_timeline(manifest, mixdown.duration_ms)
    except OSError as exc:
        return _fail(str(exc))
    except ManifestInvalid as exc:
        return _fail("; ".join(f"{path}: {msg}" for path, msg in exc.details.items()))
    except StemForgeError as exc:
        if exc.status == 404 and track_id is not None:
            return _fail(f"{exc.message} in the database of {settings.data_dir.resolve()} (STEMFORGE_DATA_DIR)")
        return _fail(exc.message)
    with tqdm(total=100, desc="Mixing", bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]") as bar:

        def progress(percent: float, message: str = "") -> None:
            bar.update(max(0.0, percent - bar.n))

        clipped = write_mix(mixdown, Path(args.out), progress)
    seconds = mixdown.frames / mixdown.sample_rate
    print(f"{args.out}: {seconds:.2f} s, {mixdown.sample_rate} Hz, 24-bit stereo, {clipped} clipped samples")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stemforge", description="StemForge server and tools")
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("serve", help="run the web server (default)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)

    w = sub.add_parser("worker", help="run job workers without the web server")
    w.add_argument("--workers", type=int, default=1, help="worker processes (each runs every job kind)")
    w.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)

    from core.separation.catalog import DEFAULT_MODEL, MODEL_NAMES

    models = sub.add_parser("models", help="list the separation models, or fetch one's weights")
    models_sub = models.add_subparsers(dest="models_cmd")
    mf = models_sub.add_parser("fetch", help="download a model's weights now (into STEMFORGE_DEMUCS_REPO if set)")
    mf.add_argument("name", choices=MODEL_NAMES)
    sep = sub.add_parser("separate", help="separate an audio file into stems on this machine")
    sep.add_argument("file")
    sep.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    sep.add_argument("--out", help="folder for the stems (default: separated/MODEL/FILE-NAME)")
    sep.add_argument("--format", choices=("wav", "flac", "mp3"), help="stem file format (default: setting)")

    users = sub.add_parser("users", help="manage accounts").add_subparsers(dest="users_cmd", required=True)
    uc = users.add_parser("create", help="create an account")
    uc.add_argument("--email", required=True)
    uc.add_argument("--password", required=True)

    tokens = sub.add_parser("tokens", help="manage API tokens").add_subparsers(dest="tokens_cmd", required=True)
    tc = tokens.add_parser("create", help="create a token and print it (only the token, on stdout)")
    tc.add_argument("--email", required=True)
    tc.add_argument("--name", default="")
    tl = tokens.add_parser("list", help="list a user's active tokens")
    tl.add_argument("--email", required=True)
    tr = tokens.add_parser("revoke", help="revoke a token")
    tr.add_argument("--email", required=True)
    tr.add_argument("--id", required=True, help="token id, as shown by `tokens list`")

    an = sub.add_parser("analyze", help="analyse an audio file and print the result as JSON")
    an.add_argument("file")
    an.add_argument("--features", nargs="+", metavar="FEATURE",
                    help="tempo, key, energy, spectral, mfcc, chroma, structure or all (default: all)")
    an.add_argument("--indent", type=int, help="pretty-print the JSON with this indent")
    an.add_argument("--tempo-range", nargs=2, type=float, metavar=("MIN", "MAX"),
                    help="count the beat inside this BPM range, at least an octave wide (e.g. 70 140)")

    mx = sub.add_parser("mix", help="render an edit manifest to a 24-bit WAV (no server needed)")
    mx.add_argument("sources", nargs="+", metavar="TRACK_OR_STEMS",
                    help="stem files in file_index order, or one track id (its stored stems, by stem_id)")
    mx.add_argument("--manifest", required=True, help="the edit manifest (JSON, version 1)")
    mx.add_argument("-o", "--out", required=True, help="the WAV file to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "analyze":
        # The analysis reads no setting and logs nothing of its own: it does without the settings, so this
        # command loads neither pydantic-settings nor asyncio (~20 MB of its peak memory). Logging as below,
        # at the default level.
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        return analyze_file(args.file, args.features, args.indent,
                            tuple(args.tempo_range) if args.tempo_range else None)
    import asyncio

    from core.settings import get_settings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.cmd in (None, "serve"):
        serve(settings, getattr(args, "host", None), getattr(args, "port", None))
        return 0
    if args.cmd == "worker":
        return worker(settings, max(1, args.workers), args.parent_pid)
    if args.cmd == "models":
        return models_command(args, settings)
    if args.cmd == "separate":
        return separate_file(args, settings)
    if args.cmd == "users":
        return asyncio.run(_with_db(settings, lambda s: _users_create(s, args, settings)))
    if args.cmd == "tokens":
        return asyncio.run(_with_db(settings, lambda s: _tokens(s, args, settings)))
    if args.cmd == "mix":
        return mix_command(args, settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
