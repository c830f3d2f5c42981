"""Check a release on the controller before any host changes (role django_app, tasks/_build_checks.yml).

Run with the build's Python path (PYTHONPATH) in the environment, and the production environment of
the first host as a JSON object on standard input (secrets stay out of the process list):
    python build_check.py check SETTINGS_MODULE WSGI_MODULE BUILD_STATIC_DIR BUILD_SOURCE_DIR
    python build_check.py manage COMMAND [ARGUMENTS...]     (a management command, e.g. collectstatic)
`check` imports the settings module, then the WSGI module (which sets Django up), then runs the system
checks with the deployment checks (what `manage.py check --deploy` runs; no database is queried),
and prints one JSON object on its last line:
    stage            "settings", "wsgi" or "check": the step that failed; "ok" when none did
    error            the exception of a failed import, "Type: message" (str)
    django           the Django version that was imported (str)
    static_root      the project's STATIC_ROOT, resolved (str, "" when unset)
    static_in_source where STATIC_ROOT lies inside the source, relative to it (str), "" when it is the
                     release's static folder (BUILD_STATIC_DIR: the project reads DJANGO_STATIC_ROOT),
                     null when it is elsewhere
    errors, warnings the checks' messages of level ERROR and above, and below (lists of str)
Exit status 0 whenever the object is printed. `manage` exits as the command does.
"""

import importlib
import json
import os
import sys


def _describe(exc):
    return f"{type(exc).__name__}: {exc}"


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def check(settings_module, wsgi_module, build_static, source_dir):
    """The checks' result as a dict (see the module's docstring)."""
    result = {"stage": "settings", "error": "", "django": "", "static_root": "", "static_in_source": None,
              "errors": [], "warnings": []}
    try:
        importlib.import_module(settings_module)
    except BaseException as exc:  # noqa: BLE001 (a settings module may raise anything, even SystemExit)
        result["error"] = _describe(exc)
        return result
    result["stage"] = "wsgi"
    try:
        importlib.import_module(wsgi_module)
    except BaseException as exc:  # noqa: BLE001
        result["error"] = _describe(exc)
        return result

    import django
    from django.conf import settings
    from django.core import checks

    result["django"] = django.get_version()
    static_root = str(settings.STATIC_ROOT or "")
    result["static_root"] = os.path.realpath(static_root) if static_root else ""
    if static_root and os.path.realpath(static_root) == os.path.realpath(build_static):
        result["static_in_source"] = ""
    elif static_root and _inside(static_root, source_dir):
        result["static_in_source"] = os.path.relpath(os.path.realpath(static_root), os.path.realpath(source_dir))

    result["stage"] = "check"
    try:
        messages = checks.run_checks(include_deployment_checks=True)
    except Exception as exc:  # noqa: BLE001 (a check imports the URLconf, the models...: anything may raise)
        result["errors"].append(_describe(exc))
        return result
    for message in messages:
        if message.is_silenced():
            continue
        # "security.W004: You have not set a value for the SECURE_HSTS_SECONDS setting": the id and the
        # first sentence (the whole text is in Django's check framework docs).
        text = f"{message.id}: {str(message.msg).split('. ')[0].rstrip('.')}"
        (result["errors"] if message.is_serious() else result["warnings"]).append(text)
    if not result["errors"]:
        result["stage"] = "ok"
    return result


def main(argv):
    """Set the environment read from standard input, then run `check` or `manage` (see above)."""
    os.environ.update({str(k): str(v) for k, v in json.loads(sys.stdin.read() or "{}").items()})
    if argv[1:2] == ["manage"]:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage", *argv[2:]])
        return 0
    if argv[1:2] == ["check"] and len(argv) == 6:
        print(json.dumps(check(*argv[2:6])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
