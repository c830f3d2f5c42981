"""Secrets kept in ansible-vault reach the hosts verbatim, even with `{{`, `{%` or `{#` in them:
ansible-core 2.19 (requirements.txt) never templates a vaulted value, nor a value it produced. The
path tested is the django_app role's own: its variables (defaults/main.yml, vars/main.yml) and the
environment file every process of the app loads (templates/environment.j2), DATABASE_URL's
percent-encoding included (and, on the way, Django's upload limits from the request-body cap). Plain-text inventory values are templates: mark them !unsafe
(docs/security.md, "Secrets")."""

import subprocess
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET_KEY = "k{{ not_a_var }}{% if %}{# x #}" + "s" * 40
DB_PASSWORD = "p{{w}}{%d{#/+&"


def encrypted(name, value, password_file):
    out = subprocess.run([str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(password_file),
                          "--name", name, value], check=True, capture_output=True, text=True).stdout
    return out


def run_role_play(tmp_path, secrets, inventory, task, *extra):
    """Run, on this machine, one task with the django_app role's own variables (defaults/main.yml,
    vars/main.yml), then the inventory's (text, YAML) and the vaulted secrets ({name: value}), as their
    precedence has it. task: the task's YAML, indented as a list item of tasks. Returns the finished
    process (its output is checked for secrets by the callers)."""
    password_file = tmp_path / "vault-password"
    password_file.write_text("test-only\n")
    (tmp_path / "secrets.yml").write_text("".join(encrypted(name, value, password_file)
                                                  for name, value in secrets.items()))
    (tmp_path / "inventory.yml").write_text(inventory)
    role = ROOT / "roles" / "django_app"
    (tmp_path / "play.yml").write_text(f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
    - {tmp_path}/inventory.yml
    - {tmp_path}/secrets.yml
  vars:
    ansible_python_interpreter: {sys.executable}
  tasks:
{task}""")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
                           "--vault-password-file", str(password_file), *extra], capture_output=True, text=True,
                          cwd=tmp_path)


def test_vaulted_secrets_reach_the_environment_file_verbatim(tmp_path):
    # What the inventory and the playbook pass (after the role's defaults, as their precedence has it).
    task = f"""    - name: Render the app's environment file as the role does
      ansible.builtin.template:
        src: {ROOT / "roles" / "django_app"}/templates/environment.j2
        dest: {tmp_path}/environment
        mode: "0600"
"""
    done = run_role_play(tmp_path, {"django_app_secret_key": SECRET_KEY, "django_app_db_password": DB_PASSWORD},
                         "django_app_name: demo\ndjango_app_host_address: 10.0.0.5\n"
                         "django_app_max_request_body_mb: 20\n", task)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = dict(line.split("=", 1) for line in (tmp_path / "environment").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert lines["DJANGO_SECRET_KEY"] == f'"{SECRET_KEY}"'
    url = urllib.parse.urlsplit(lines["DATABASE_URL"].strip('"'))
    assert urllib.parse.unquote(url.password) == DB_PASSWORD
    # The request-body cap reaches Django's limits: non-file data up to it, uploads in memory up to 2.5 MB.
    assert (lines["DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE"], lines["DJANGO_FILE_UPLOAD_MAX_MEMORY_SIZE"]) == (
        f'"{20 * 1048576}"', '"2621440"')
    # Nor is any secret printed: the play's output names none.
    assert SECRET_KEY not in done.stdout and DB_PASSWORD not in done.stdout


def test_migrations_wait_briefly_for_a_table_lock(tmp_path):
    """The migration user's DATABASE_URL carries init_command=SET SESSION lock_wait_timeout=10, which
    dj-database-url and django-environ pass to the driver as OPTIONS (mysqlclient's init_command): a
    migration behind a long transaction fails after 10 s instead of queueing every query of its table.
    With 0 the URL carries none (the server's default). Its password, vaulted, stays verbatim."""
    inventory = "django_app_name: demo\ndjango_app_host_address: 10.0.0.5\n"
    task = f"""    - name: Write the migration user's URL as the role builds it
      ansible.builtin.copy:
        content: "{{{{ __django_app_migrate_database_url }}}}"
        dest: {tmp_path}/url
        mode: "0600"
"""
    done = run_role_play(tmp_path, {"django_app_migrate_password": DB_PASSWORD}, inventory, task)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    url = urllib.parse.urlsplit((tmp_path / "url").read_text().splitlines()[0])
    assert urllib.parse.unquote(url.password) == DB_PASSWORD
    assert urllib.parse.parse_qs(url.query) == {"charset": ["utf8mb4"],
                                                "init_command": ["SET SESSION lock_wait_timeout=10"]}
    off = run_role_play(tmp_path, {"django_app_migrate_password": DB_PASSWORD}, inventory, task,
                        "-e", "django_app_migrate_lock_wait_timeout=0")
    assert off.returncode == 0, off.stdout[-3000:]
    assert "init_command" not in (tmp_path / "url").read_text()
