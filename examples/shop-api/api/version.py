"""GET /api/version — plain-text version string (for curl and load balancers)."""

import platform

from lib.config import get_settings


def handler(request):
    settings = get_settings()
    return f"{settings.service_name} {settings.version} (python {platform.python_version()})\n"
