"""The small project the daemon and watcher tests build: two routes over a shared lib."""

FILES = {
    "lib/__init__.py": "",
    "lib/util.py": "def twice(x):\n    return 2 * x\n",
    "lib/names.py": "NAME = 'n'\n",
    "api/index.py": "from lib.util import twice\n\n\ndef handler(request):\n"
    "    return {'n': twice(2)}\n",
    "api/names.py": "from lib import names\n\n\ndef handler(request):\n"
    "    return {'name': names.NAME}\n",
}
