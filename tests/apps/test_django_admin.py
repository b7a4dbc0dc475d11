"""A Django project as real ones are laid out, its admin served by WhiteNoise.

The project is written here, but what it serves is published code: Django's
admin (its templates, its static files, its login redirect) and WhiteNoise, a
dependency pinned by the project's lock and so shipped in the deployment's
layer, serving the admin's static files straight from Django's package
(``WHITENOISE_USE_FINDERS``). Django's GZipMiddleware compresses the HTML.
The project has an app of its own (``notes``: a model, a migration, an app
template extending a project template) and a SQLite database file made by
``manage.py migrate``, bundled with ``[tool.vega] include`` and read in the region.
"""

from __future__ import annotations

import gzip
import http.client
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.apps.projects import ROLLOUT, write
from tests.rollout.helpers import stop_fleet, vega_json
from vega_dag import _core
from vega_dag.pipeline import build
from vega_dag.store.objects import ObjectStore

WHITENOISE = "6.12.0"

SITE = {
    "pyproject.toml": (
        '[project]\nname = "notes-site"\nversion = "0.1.0"\n\n[tool.vega]\n'
        # Django finds these at run time, by name or by path: bundle them.
        'include = ["mysite/settings.py", "notes/", "templates/", "db.sqlite3"]\n' + ROLLOUT
    ),
    "requirements.lock": f"whitenoise=={WHITENOISE}\n",
    "manage.py": (
        "import os\nimport sys\n\n"
        'if __name__ == "__main__":\n'
        '    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n'
        "    from django.core.management import execute_from_command_line\n\n"
        "    execute_from_command_line(sys.argv)\n"
    ),
    "mysite/__init__.py": "",
    "mysite/settings.py": (
        "from pathlib import Path\n\n"
        "BASE_DIR = Path(__file__).resolve().parent.parent\n\n"
        'SECRET_KEY = "django-insecure-fixture"\n'
        "DEBUG = False\n"
        'ALLOWED_HOSTS = ["*"]\n\n'
        "INSTALLED_APPS = [\n"
        '    "django.contrib.admin",\n'
        '    "django.contrib.auth",\n'
        '    "django.contrib.contenttypes",\n'
        '    "django.contrib.sessions",\n'
        '    "django.contrib.messages",\n'
        '    "django.contrib.staticfiles",\n'
        '    "notes",\n'
        "]\n\n"
        "MIDDLEWARE = [\n"
        '    "django.middleware.security.SecurityMiddleware",\n'
        '    "whitenoise.middleware.WhiteNoiseMiddleware",\n'
        '    "django.middleware.gzip.GZipMiddleware",\n'
        '    "django.contrib.sessions.middleware.SessionMiddleware",\n'
        '    "django.middleware.common.CommonMiddleware",\n'
        '    "django.middleware.csrf.CsrfViewMiddleware",\n'
        '    "django.contrib.auth.middleware.AuthenticationMiddleware",\n'
        '    "django.contrib.messages.middleware.MessageMiddleware",\n'
        "]\n\n"
        'ROOT_URLCONF = "mysite.urls"\n\n'
        "TEMPLATES = [\n"
        "    {\n"
        '        "BACKEND": "django.template.backends.django.DjangoTemplates",\n'
        '        "DIRS": [BASE_DIR / "templates"],\n'
        '        "APP_DIRS": True,\n'
        '        "OPTIONS": {\n'
        '            "context_processors": [\n'
        '                "django.template.context_processors.request",\n'
        '                "django.contrib.auth.context_processors.auth",\n'
        '                "django.contrib.messages.context_processors.messages",\n'
        "            ],\n"
        "        },\n"
        "    },\n"
        "]\n\n"
        'ASGI_APPLICATION = "mysite.asgi.application"\n\n'
        "DATABASES = {\n"
        '    "default": {\n'
        '        "ENGINE": "django.db.backends.sqlite3",\n'
        '        "NAME": BASE_DIR / "db.sqlite3",\n'
        "    }\n"
        "}\n\n"
        'DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"\n'
        "USE_TZ = True\n"
        'STATIC_URL = "static/"\n'
        "WHITENOISE_USE_FINDERS = True\n"
    ),
    "mysite/urls.py": (
        "from django.contrib import admin\n"
        "from django.urls import path\n\n"
        "from notes import views\n\n"
        "urlpatterns = [\n"
        '    path("admin/", admin.site.urls),\n'
        '    path("", views.index, name="index"),\n'
        "]\n"
    ),
    "mysite/asgi.py": (
        "import os\n\n"
        "from django.core.asgi import get_asgi_application\n\n"
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n\n'
        "application = get_asgi_application()\n"
    ),
    "notes/__init__.py": "",
    "notes/apps.py": (
        'from django.apps import AppConfig\n\n\nclass NotesConfig(AppConfig):\n    name = "notes"\n'
    ),
    "notes/models.py": (
        "from django.db import models\n\n\n"
        "class Note(models.Model):\n"
        "    title = models.CharField(max_length=200)\n\n"
        "    def __str__(self):\n"
        "        return self.title\n"
    ),
    "notes/admin.py": (
        "from django.contrib import admin\n\n"
        "from notes.models import Note\n\n"
        "admin.site.register(Note)\n"
    ),
    "notes/views.py": (
        "from django.shortcuts import render\n\n"
        "from notes.models import Note\n\n\n"
        "def index(request):\n"
        '    return render(request, "notes/index.html", {"notes": Note.objects.order_by("id")})\n'
    ),
    "notes/templates/notes/index.html": (
        '{% extends "base.html" %}\n'
        "{% block content %}<ul>{% for note in notes %}<li>{{ note }}</li>"
        "{% endfor %}</ul>{% endblock %}\n"
    ),
    "templates/base.html": (
        "<!doctype html>\n<html><head><title>Notes</title></head>\n"
        "<body><h1>Notes</h1>{% block content %}{% endblock %}\n"
        # Long enough for GZipMiddleware (it skips bodies under 200 bytes).
        "<footer>" + "Served by vega-dag from its bundle. " * 8 + "</footer></body></html>\n"
    ),
}


def fetch(url: str, path: str, headers: dict[str, str] | None = None):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path, offline_wheels):
    root = write(tmp_path / "site", SITE)
    offline_wheels(root / "requirements.lock")

    def manage(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=root, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr

    # As the project's developer would: a migration, a database, some rows.
    # WhiteNoise comes from the layer in the region; here it only needs to import.
    manage("makemigrations", "notes")
    manage("migrate", "--noinput")
    manage("shell", "-c", "from notes.models import Note; Note(title='first & <best>').save()")
    yield root
    stop_fleet(root)


def test_django_admin_and_whitenoise_served_through_a_region(site):
    out = vega_json("deploy", str(site))
    assert out["status"] == "live", out["problems"]
    url = out["regions"][0]["url"]
    # WhiteNoise is the lock's: in the layer, not in any bundle.
    built = build(site)
    assert built.layer is not None
    store = ObjectStore(site / ".vega")
    assert "whitenoise/middleware.py" in _core.read_archive(store.get(built.layer))
    (digest,) = set(built.routes.values())  # one app, one bundle
    bundle = _core.read_archive(store.get(digest))
    assert {"notes/templates/notes/index.html", "templates/base.html", "db.sqlite3"} <= set(bundle)
    assert not [name for name in bundle if name.startswith("whitenoise/")]

    status, headers, body = fetch(url, "/")
    assert status == 200, body
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert b"<li>first &amp; &lt;best&gt;</li>" in body  # from db.sqlite3, autoescaped
    assert b"<title>Notes</title>" in body  # the project template it extends

    status, headers, gz = fetch(url, "/", {"Accept-Encoding": "gzip"})
    assert (status, headers["content-encoding"]) == (200, "gzip")
    assert gzip.decompress(gz) == body

    # The admin's login redirect, then its login page from its own templates.
    status, headers, _ = fetch(url, "/admin/")
    assert status == 302
    assert headers["location"] == "/admin/login/?next=/admin/"
    status, headers, body = fetch(url, "/admin/login/?next=/admin/")
    assert status == 200, body
    assert b'name="csrfmiddlewaretoken"' in body and b"Django administration" in body
    assert "csrftoken=" in headers["set-cookie"]

    # The admin's static files, served by WhiteNoise from Django's package.
    status, headers, css = fetch(url, "/static/admin/css/base.css")
    assert status == 200, css
    assert headers["content-type"].startswith("text/css")
    assert b"DJANGO Admin styles" in css
    assert int(headers["content-length"]) == len(css)
    assert fetch(url, "/static/admin/css/base.css", {"If-None-Match": headers["etag"]})[0] == 304
    assert fetch(url, "/static/admin/css/nowhere.css")[0] == 404
