"""A small Flask app that shares its sessions with the Portcullis site, for the interoperability
test (crates/portcullis-site/tests/binary/flask_interop.rs).

It is configured the way a team moving to Rust would have it: Flask-Session 0.8 on Redis with a
signed cookie, Flask-WTF 1.3's CSRFProtect on every POST, and a login that does what
Flask-Login's login_user() does to the session (`_user_id`, `_fresh`, `_id`). It reads the
Portcullis site's accounts (its SQLite users table) to check that a user exists.

Settings come from the environment: SECRET_KEY, REDIS_URL, USERS_DB (a path to the SQLite file),
and optionally SESSION_KEY_PREFIX, SESSION_PERMANENT, PERMANENT_SESSION_LIFETIME.
"""

import hashlib
import os
import sqlite3
import unicodedata
from datetime import date, datetime, timezone

import redis
from flask import Flask, flash, get_flashed_messages, jsonify, request, session
from flask_session import Session
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["SECRET_KEY"],
    SESSION_TYPE="redis",
    SESSION_REDIS=redis.Redis.from_url(os.environ["REDIS_URL"]),
    SESSION_KEY_PREFIX=os.environ.get("SESSION_KEY_PREFIX", "sess:"),
    SESSION_USE_SIGNER=True,
    SESSION_PERMANENT=os.environ.get("SESSION_PERMANENT", "true") == "true",
    PERMANENT_SESSION_LIFETIME=int(os.environ.get("PERMANENT_SESSION_LIFETIME", "300")),
    SESSION_COOKIE_SAMESITE="Lax",
)
# One proxy in front, whose X-Forwarded-Proto is believed: request.is_secure follows it, so
# Flask-WTF's Referer check runs for "https" requests.
app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)
Session(app)
CSRFProtect(app)


@app.errorhandler(CSRFError)
def csrf_refused(error):
    return jsonify(error=error.description), 400


def name_key(name):
    """The site's key of a user name (`accounts/names.rs`): NFKC, full case folding, NFKC."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name.strip()).casefold())


def user_id(name):
    """The id of the Portcullis account `name`, or None."""
    with sqlite3.connect(f"file:{os.environ['USERS_DB']}?mode=ro", uri=True) as db:
        row = db.execute("SELECT id FROM users WHERE name_key = ?", (name_key(name),)).fetchone()
    return row[0] if row else None


def describe(value):
    """A value as JSON, with its Python type, so the test sees what msgspec decoded."""
    if isinstance(value, dict):
        inner = {key: describe(item) for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        inner = [describe(item) for item in value]
    elif isinstance(value, (datetime, date)):
        inner = value.isoformat()
    else:
        inner = value
    return {"type": type(value).__name__, "value": inner}


@app.get("/healthz")
def healthz():
    return "ok"


@app.get("/csrf")
def csrf():
    return jsonify(csrf_token=generate_csrf())


@app.post("/login")
def login():
    found = user_id(request.form["name"])
    if found is None:
        return jsonify(error="no such user"), 401
    # A new sid on login (session fixation), as Flask-Session offers since 0.7.
    app.session_interface.regenerate(session)
    # What Flask-Login's login_user() writes.
    session["_user_id"] = str(found)
    session["_fresh"] = True
    agent = request.headers.get("User-Agent", "")
    session["_id"] = hashlib.sha512(f"{request.remote_addr}|{agent}".encode()).hexdigest()
    session["logged_in_at"] = datetime.now(timezone.utc)
    return jsonify(user_id=str(found))


@app.get("/whoami")
def whoami():
    return jsonify(user_id=session.get("_user_id"), permanent=session.permanent)


@app.post("/logout")
def logout():
    # Logging out ends the session: Flask-Session deletes the record and the cookie.
    session.clear()
    return jsonify(ok=True)


@app.post("/rich")
def rich():
    session["flask_only"] = {
        "at": datetime(2026, 5, 1, 12, 30, tzinfo=timezone.utc),
        "ratio": 1.5,
        "pair": (1, "two"),
        "nothing": None,
        "big": 2**40,
    }
    return jsonify(ok=True)


@app.post("/flash")
def flash_message():
    flash(request.form["message"], request.form.get("category", "message"))
    return jsonify(ok=True)


@app.get("/flashes")
def flashes():
    return jsonify(get_flashed_messages(with_categories=True))


@app.get("/session")
def dump():
    return jsonify({key: describe(value) for key, value in session.items()})


@app.post("/form")
def form():
    return jsonify(ok=True, note=request.form.get("note"))
