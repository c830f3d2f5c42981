"""Filters behind the common role's kernel settings: exact values, and floors raised, never lowered.

The role reads every key's live value with one ``cat`` of /proc/sys per host, then calls
``ansible.posix.sysctl`` only for the keys these filters return: a module call per key costs about
0.1 s per host even when it changes nothing (docs/performance.md, "Where the time goes").
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE


def _fields(value, what):
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        parts = str(value).split()
    try:
        return [int(p) for p in parts]
    except ValueError as exc:
        raise AnsibleFilterError(f"sysctl_floor: {what} '{value}' is not a list of integers") from exc


def sysctl_floor(current, floor, key="sysctl"):
    """Return the value to set so that every field is at least the floor's field.

    ``current``: the kernel's value (str with fields separated by whitespace, or a list of ints);
    ``floor``: an int, a str of fields or a list of ints; ``key`` names the key in errors. Returns
    a str of fields joined by one space. Raises AnsibleFilterError when a value is not integers, the
    current value is empty, or the floor has more fields than the kernel value.

    Fields where the current value is already higher stay as they are; a floor with fewer fields
    than the key leaves the remaining fields alone. The result is the current value, untouched, when
    no field needs raising.
    """
    cur = _fields(current, f"{key}: current value")
    flo = _fields(floor, f"{key}: floor")
    if not cur:
        raise AnsibleFilterError(f"sysctl_floor: {key} has no current value")
    if len(flo) > len(cur):
        raise AnsibleFilterError(
            f"sysctl_floor: the floor for {key} has {len(flo)} fields ({floor}) but the kernel value has "
            f"{len(cur)} ({current})"
        )
    raised = [max(c, f) for c, f in zip(cur, flo)] + cur[len(flo):]
    return " ".join(str(v) for v in raised)


def sysctl_normalize(value):
    """Fold whitespace (the kernel separates fields with tabs, users with spaces).

    ``value``: a str, a number, or a list of fields. Returns a str with the fields joined by one space.
    """
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return " ".join(str(value).split())


def _live(keys, live):
    lines = list(live or [])
    if len(lines) != len(keys):
        raise AnsibleFilterError(
            f"sysctl: read {len(lines)} live value(s) for {len(keys)} key(s) {list(keys)}: {lines}"
        )
    return dict(zip(keys, (sysctl_normalize(line) for line in lines)))


def _module_value(value):
    """The value as ``ansible.posix.sysctl`` writes it: booleans and their words as 1 or 0, fields of a
    list joined by one space, anything else stripped."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return sysctl_normalize(value)
    text = str(value)
    if text.lower() in BOOLEANS_TRUE:
        return "1"
    if text.lower() in BOOLEANS_FALSE:
        return "0"
    return text.strip()


def _file_values(persisted):
    """The key -> value lines of a sysctl.d file, read as ``ansible.posix.sysctl`` reads them."""
    values = {}
    for line in (persisted or "").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def sysctl_changes(wanted, live, persisted=""):
    """Return the exact settings the host does not hold yet, live or persisted.

    ``wanted``: a dict of key -> value (str, int, bool or list of fields), in the order the keys were
    read. ``live``: the kernel's values, one str per key of ``wanted`` in the same order (the lines of
    ``cat`` on their /proc/sys files). ``persisted``: the text of the sysctl.d file the
    settings persist in ('' when it is missing). Each value is compared as ``ansible.posix.sysctl``
    writes and compares it (true/yes/on as 1, false/no/off as 0, stripped; live fields after folding
    whitespace), so a key the module would leave alone is never returned.
    Returns a list of {"key": str, "value": str} for the keys whose live value or persisted line differs.
    Raises AnsibleFilterError when the number of live values is not the number of keys.
    """
    now = _live(list(wanted), live)
    in_file = _file_values(persisted)
    changes = []
    for key, value in wanted.items():
        text = _module_value(value)
        if now[key] != sysctl_normalize(text) or in_file.get(key) != text:
            changes.append({"key": key, "value": text})
    return changes


def sysctl_raises(request, keys, live):
    """Return the floors the running kernel is below, with the value that raises each.

    ``request``: a dict of key -> floor (see ``sysctl_floor``). ``keys``: the keys of ``request`` that
    were read, in order (a container leaves host-wide keys out). ``live``: the kernel's values, one str
    per key of ``keys``. Returns a list of {"key": str, "value": str} for the keys with a field below
    its floor; the value keeps every field already higher. Raises AnsibleFilterError as
    ``sysctl_floor`` does, and when the number of live values is not the number of keys.
    """
    now = _live(list(keys), live)
    raises = []
    for key in keys:
        raised = sysctl_floor(now[key], request[key], key)
        if raised != now[key]:
            raises.append({"key": key, "value": raised})
    return raises


def sysctl_calls(settings, floor_request, floor_keys, live, persisted=""):
    """Return every sysctl call a host needs: its exact settings that differ, then its floors to raise.

    ``settings``: a dict of key -> exact value. ``floor_request``, ``floor_keys``: as ``sysctl_raises``'s
    ``request`` and ``keys``. ``live``: one read of the settings' keys then the
    floor keys, in that order (one str per key). ``persisted``: as ``sysctl_changes``'s.
    Returns ``sysctl_changes(...) + sysctl_raises(...)`` (lists of {"key", "value"}). Raises
    AnsibleFilterError when the number of live values is not the number of keys.
    """
    live = list(live or [])
    split = len(settings)
    if len(live) != split + len(floor_keys):
        raise AnsibleFilterError(
            f"sysctl: read {len(live)} live value(s) for {split + len(floor_keys)} key(s) "
            f"{list(settings) + list(floor_keys)}: {live}"
        )
    return sysctl_changes(settings, live[:split], persisted) + sysctl_raises(floor_request, floor_keys, live[split:])


class FilterModule:
    """The common role's kernel-setting filters."""

    def filters(self):
        """Map the filter names to their functions."""
        return {
            "sysctl_floor": sysctl_floor,
            "sysctl_normalize": sysctl_normalize,
            "sysctl_changes": sysctl_changes,
            "sysctl_raises": sysctl_raises,
            "sysctl_calls": sysctl_calls,
        }
