"""Strategy ``mitogen_linear``: Ansible's ``linear`` strategy, run through Mitogen for Ansible.

The bundle's ``ansible.cfg`` and its Molecule configuration select this strategy. Mitogen keeps one
Python interpreter per host for the whole run and sends modules to it, instead of starting a new
connection and interpreter for every task; on the lab a no-op ``playbooks/site.yml`` ran about 3x
faster with it (docs/testing.md, "Timing"). The plays, their order and their results are those of
``linear``: only how a task reaches its host changes. Mitogen redirects the connection types it
knows by their short names (``ssh``, ``docker``); any other, and ``local`` (see below), runs as in
plain Ansible.

Without the ``mitogen`` package (requirements.txt pins it), this falls back to Ansible's own
``linear`` strategy with a warning, so a playbook does not fail for want of it (a Mitogen that is
installed but broken still fails the run, which is wanted). Where Mitogen differs from plain Ansible
(sudo's command line, one task at a time per host and account) is listed in its documentation,
"Noteworthy Differences"; the bundle's own workaround is in roles/common (python3-apt first).
Source: Mitogen for Ansible, "Installation" (https://mitogen.networkgenomics.com/ansible_detailed.html).
"""

from __future__ import annotations

DOCUMENTATION = """
    name: mitogen_linear
    short_description: Ansible's linear strategy through Mitogen, or plain linear without it
    description:
        - Task execution is the same as linear; Mitogen, when installed, keeps one interpreter per
          host for the whole run.
    author: the bundle's maintainers
"""

try:
    import ansible_mitogen.strategy as _mitogen_strategy
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

    # Tasks on the controller itself (connection local: the app's build, Molecule's create and
    # destroy) stay on Ansible's own local connection, which costs no remote round trip anyway:
    # through Mitogen, an async community.docker module on localhost (how Molecule's docker driver
    # creates and removes containers) never finishes. Mitogen reads this tuple at each connection.
    _mitogen_strategy.REDIRECTED_CONNECTION_PLUGINS = tuple(
        name for name in _mitogen_strategy.REDIRECTED_CONNECTION_PLUGINS if name != "local")
except ImportError as error:
    from ansible.plugins.strategy.linear import StrategyModule as _Linear
    from ansible.utils.display import Display

    _WHY = str(error)

    class StrategyModule(_Linear):
        """Ansible's linear strategy, after a warning that Mitogen could not be imported."""

        def run(self, iterator, play_context):
            Display().warning(f"mitogen_linear: Mitogen is not importable ({_WHY}); running Ansible's "
                              "plain linear strategy (slower). Install requirements.txt into the "
                              "controller's virtualenv (make venv).")
            return super().run(iterator, play_context)

__all__ = ["StrategyModule"]
