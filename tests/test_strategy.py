"""The strategy every playbook runs with (ansible.cfg: mitogen_linear, plugins/strategy/).

With Mitogen installed it must be Mitogen's linear strategy; without it, Ansible's own linear
strategy, and a playbook must still run to the end, with a warning that says what is missing."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "plugins" / "strategy" / "mitogen_linear.py"
# Makes `import ansible_mitogen...` fail in a child process, as on a controller without Mitogen.
HIDE_MITOGEN = textwrap.dedent("""
    import sys
    class _Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "ansible_mitogen" or name.startswith(("ansible_mitogen.", "mitogen")):
                raise ImportError(f"No module named {name!r} (hidden by the test)")
    sys.meta_path.insert(0, _Hide())
""")


def strategy_bases(hide_mitogen):
    """The modules of the classes the shim's StrategyModule derives from, loaded in a fresh process."""
    code = (HIDE_MITOGEN if hide_mitogen else "") + textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("mitogen_linear", {str(SHIM)!r})
        shim = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(shim)
        print(" ".join(c.__module__ for c in shim.StrategyModule.__mro__))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.split()


def test_with_mitogen_the_strategy_is_mitogens_linear():
    bases = strategy_bases(hide_mitogen=False)
    assert "ansible_mitogen.strategy" in bases
    assert "ansible.plugins.strategy.linear" in bases


def test_without_mitogen_the_strategy_is_ansibles_linear():
    bases = strategy_bases(hide_mitogen=True)
    assert not any(b.startswith("ansible_mitogen") for b in bases)
    assert "ansible.plugins.strategy.linear" in bases


def test_a_playbook_runs_to_the_end_without_mitogen(tmp_path):
    """ansible-playbook in a process that cannot import Mitogen: the play runs, with the warning."""
    play = tmp_path / "play.yml"
    play.write_text(textwrap.dedent("""
        - name: A play on the controller
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Say something
              ansible.builtin.command: echo ran-without-mitogen
              register: out
              changed_when: false
            - name: Show it
              ansible.builtin.debug:
                msg: "{{ out.stdout }}"
    """))
    runner = tmp_path / "run.py"
    runner.write_text(HIDE_MITOGEN + textwrap.dedent("""
        from ansible.cli.playbook import main
        sys.argv = ["ansible-playbook", *sys.argv[1:]]
        main()
    """))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([sys.executable, str(runner), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ran-without-mitogen" in out
    assert "Mitogen is not importable" in out


def test_async_docker_tasks_on_the_controller_finish(tmp_path):
    """Molecule's docker driver creates and removes containers with async community.docker tasks on
    localhost; through Mitogen's local connection those never finished (every scenario hung in its
    first destroy), so the strategy keeps the controller on Ansible's own local connection."""
    play = tmp_path / "play.yml"
    play.write_text(textwrap.dedent("""
        - name: Async tasks on the controller, as Molecule's create and destroy run them
          hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: Remove containers that do not exist, in the background
              community.docker.docker_container:
                name: "{{ item }}"
                state: absent
              loop: [bundle-strategy-test-a, bundle-strategy-test-b]
              async: 300
              poll: 0
              register: jobs
            - name: Wait for each
              ansible.builtin.async_status:
                jid: "{{ item.ansible_job_id }}"
              register: job
              until: job is finished
              retries: 30
              delay: 1
              loop: "{{ jobs.results }}"
    """))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run([str(playbook), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
                           str(play)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "failed=0" in out
