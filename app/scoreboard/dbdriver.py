"""Pick the MySQL driver: mysqlclient (``MySQLdb``) if present, else PyMySQL.

Hosts get mysqlclient from Debian (``python3-mysqldb``); where it is missing
(a plain virtualenv without a compiler) the pure-Python PyMySQL stands in.
"""


def ensure_mysqldb():
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        import pymysql

        pymysql.install_as_MySQLdb()
