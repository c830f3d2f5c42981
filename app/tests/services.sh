#!/bin/bash
# Start a local MariaDB and memcached for the tests and create the test user.
# For a Debian machine without systemd (a container, CI), run as root.
# Idempotent: servers already running are left alone.
set -euo pipefail

DB_NAME=${SCOREBOARD_DB_NAME:-scoreboard}
DB_USER=${SCOREBOARD_DB_USER:-scoreboard}
DB_PASSWORD=${SCOREBOARD_DB_PASSWORD:-scoreboard}
CACHE_PORT=11211

if ! command -v mariadbd >/dev/null || ! command -v memcached >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server memcached >/dev/null
fi

if ! mariadb-admin ping --silent >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    install -d -o mysql -g mysql /run/mysqld
    nohup mariadbd --user=mysql >/dev/null 2>&1 &
    for _ in $(seq 60); do
        mariadb-admin ping --silent >/dev/null 2>&1 && break
        sleep 0.5
    done
    mariadb-admin ping --silent >/dev/null
fi

if ! (exec 3<>"/dev/tcp/127.0.0.1/$CACHE_PORT") 2>/dev/null; then
    memcached -u memcache -l 127.0.0.1 -p "$CACHE_PORT" -m 64 -d
fi

# The tests create and drop test_<DB_NAME>; the app itself uses <DB_NAME>.
mariadb <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost', '$DB_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`test_$DB_NAME\`.* TO '$DB_USER'@'localhost', '$DB_USER'@'127.0.0.1';
SQL
echo "mariadb and memcached are up; user $DB_USER can use $DB_NAME and test_$DB_NAME"
