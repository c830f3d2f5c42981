"""Filters behind the common role's sysctl floor: raise a kernel value, never lower it."""

from ansible.errors import AnsibleFilterError


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
    """Fold whitespace (the kernel separates fields with tabs, users with spaces)."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return " ".join(str(value).split())


class FilterModule:
    def filters(self):
        return {"sysctl_floor": sysctl_floor, "sysctl_normalize": sysctl_normalize}
