"""One-app fixture projects, laid out as real ones are: a FastAPI app with its
routers in a package, a Flask app with blueprints, a small Django project."""

from __future__ import annotations

from pathlib import Path

ROLLOUT = """
[tool.vega.rollout]
canary = "fra"
waves = [["fra"]]
regions = 1

# A loaded test machine imports FastAPI, Pydantic or Django slowly.
[tool.vega.health]
p99_ms = 5000
min_samples = 2
load_timeout_s = 60

[tool.vega.import_check]
timeout_s = 60
"""

FASTAPI = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0.1.0"\n\n[tool.vega]\n'
    'app = "shop.main:app"\n'
    + ROLLOUT
    + '\n[tool.vega.health.probes]\n"/items/{item_id}" = ["/items/1"]\n',
    "shop/__init__.py": "",
    "shop/main.py": (
        "from fastapi import FastAPI\n\n"
        "from shop.routers import items, users\n\n"
        "app = FastAPI()\n"
        'app.include_router(items.router, prefix="/items")\n'
        "app.include_router(users.router)\n\n\n"
        '@app.get("/health")\n'
        "def health() -> dict:\n"
        '    return {"ok": True}\n'
    ),
    "shop/db.py": 'ITEMS = ["mug", "pen"]\n',
    "shop/routers/__init__.py": "",
    "shop/routers/items.py": (
        "from fastapi import APIRouter\n\n"
        "from shop import db\n\n"
        "router = APIRouter()\n\n\n"
        '@router.get("/")\n'
        "def list_items() -> list:\n"
        "    return db.ITEMS\n\n\n"
        '@router.get("/{item_id}")\n'
        "def get_item(item_id: int) -> dict:\n"
        '    return {"id": item_id, "name": db.ITEMS[item_id % len(db.ITEMS)]}\n\n\n'
        '@router.post("/")\n'
        "def add_item() -> dict:\n"
        '    return {"added": True}\n'
    ),
    "shop/routers/users.py": (
        "from fastapi import APIRouter, Request\n\n"
        "router = APIRouter()\n\n\n"
        '@router.get("/users/me")\n'
        "def me(request: Request) -> dict:\n"
        '    return {"user": "me", "root": request.scope.get("root_path", "")}\n'
    ),
}

FLASK = {
    "pyproject.toml": '[project]\nname = "blog"\nversion = "0.1.0"\n\n[tool.vega]\n'
    'app_mount = "/v1"\n' + ROLLOUT,
    # Found without configuration: app.py defining `app`.
    "app.py": (
        "from flask import Flask\n\n"
        "from blog.posts import posts\n"
        "from blog.authors import authors\n\n"
        "app = Flask(__name__)\n"
        'app.register_blueprint(posts, url_prefix="/posts")\n'
        "app.register_blueprint(authors)\n"
    ),
    "blog/__init__.py": "",
    "blog/posts.py": (
        "from flask import Blueprint, jsonify, request, url_for\n\n"
        'posts = Blueprint("posts", __name__)\n\n\n'
        '@posts.get("/")\n'
        "def index():\n"
        '    return jsonify(posts=[1, 2], url=url_for("posts.show", post_id=1), '
        "root=request.script_root)\n\n\n"
        '@posts.get("/<int:post_id>")\n'
        "def show(post_id):\n"
        "    return jsonify(post=post_id)\n"
    ),
    "blog/authors.py": (
        "from flask import Blueprint, jsonify\n\n"
        'authors = Blueprint("authors", __name__)\n\n\n'
        '@authors.route("/authors", methods=["GET", "POST"])\n'
        "def index():\n"
        '    return jsonify(authors=["ada"])\n'
    ),
}

DJANGO = {
    "pyproject.toml": '[project]\nname = "site"\nversion = "0.1.0"\n' + ROLLOUT,
    "manage.py": (
        "import os\nimport sys\n\n"
        'if __name__ == "__main__":\n'
        '    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n'
        "    from django.core.management import execute_from_command_line\n\n"
        "    execute_from_command_line(sys.argv)\n"
    ),
    "mysite/__init__.py": "",
    "mysite/settings.py": (
        'SECRET_KEY = "fixture"\n'
        "DEBUG = False\n"
        'ALLOWED_HOSTS = ["*"]\n'
        'ROOT_URLCONF = "mysite.urls"\n'
        "INSTALLED_APPS: list[str] = []\n"
        "DATABASES: dict = {}\n"
        "USE_TZ = True\n"
    ),
    "mysite/urls.py": (
        "from django.urls import include, path\n\n"
        "from mysite import views\n\n"
        "urlpatterns = [\n"
        '    path("", views.home),\n'
        '    path("polls/", include("polls.urls")),\n'
        "]\n"
    ),
    "mysite/views.py": (
        "from django.http import JsonResponse\n\n\n"
        "def home(request):\n"
        '    return JsonResponse({"home": True})\n'
    ),
    # Found without configuration: the project package's asgi.py, `application`.
    "mysite/asgi.py": (
        "import os\n\n"
        "from django.core.asgi import get_asgi_application\n\n"
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n\n'
        "application = get_asgi_application()\n"
    ),
    "polls/__init__.py": "",
    "polls/urls.py": (
        "from django.urls import path\n\n"
        "from polls import views\n\n"
        "urlpatterns = [\n"
        '    path("", views.index),\n'
        '    path("<int:question_id>/", views.detail),\n'
        "]\n"
    ),
    "polls/views.py": (
        "from django.http import JsonResponse\n\n\n"
        "def index(request):\n"
        '    return JsonResponse({"polls": [1]})\n\n\n'
        "def detail(request, question_id):\n"
        '    return JsonResponse({"question": question_id})\n'
    ),
}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
