"""The benchmark's app on Flask 3.1 and Flask-Session 0.8 (benches/peers/run): the same four
routes as the Rust apps, on Redis, with a signed cookie and a permanent session of 5 minutes
refreshed on each request (Flask's SESSION_REFRESH_EACH_REQUEST default), as a Flask app in
production has it. Served by gunicorn (gthread workers); REDIS_URL comes from the environment.
"""

import os

import redis
from flask import Flask, session
from flask_session import Session

app = Flask(__name__)
app.config.update(
    SECRET_KEY="benches/peers: a secret key of at least 32 bytes",
    SESSION_TYPE="redis",
    SESSION_REDIS=redis.Redis.from_url(os.environ["REDIS_URL"]),
    SESSION_KEY_PREFIX="sess:",
    SESSION_USE_SIGNER=True,
    SESSION_PERMANENT=True,
    PERMANENT_SESSION_LIFETIME=300,
    SESSION_COOKIE_SAMESITE="Lax",
)
Session(app)


@app.get("/plain")
def plain():
    """Never touches the session."""
    return "ok"


@app.get("/read")
def read():
    """Reads the logged-in user."""
    return session.get("user", "")


@app.post("/write")
def write():
    """n += 1."""
    session["n"] = session.get("n", 0) + 1
    return str(session["n"])


@app.post("/login")
def login():
    """A log-in: a new id (no session fixation) holding the user."""
    app.session_interface.regenerate(session)
    session["user"] = "alice"
    return "welcome"
