"""The redaction corpus: secret shapes that every output must hide (with what it must keep
beside them) and look-alikes that every output must show as they are. Shared by
``test_redact.py`` (the redactor itself) and ``test_redact_outputs.py`` (every output)."""

from __future__ import annotations

import base64
import json

# Fixed secrets the corpus hides: each long and odd enough to appear nowhere else.
PW = "Hunter2-Xq9"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
BASIC = base64.b64encode(f"app:{PW}".encode()).decode()
PEM_BODY = "MIIEowIBAAKCAQEA7bq" + "Zm9vYmFy" * 6
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"

# (text, the secret it holds, what must be kept beside it)
SECRETS = [
    # key names in k=v, the list first
    (f"db_password={PW}", PW, ["db_password="]),
    (f"DB_PASSWORD={PW}", PW, ["DB_PASSWORD="]),
    (f"PGPASSWORD={PW} psql -h db.example.com", PW, ["PGPASSWORD=", "psql -h db.example.com"]),
    (f"MYSQL_PWD={PW}", PW, ["MYSQL_PWD="]),
    (f"secret_key={PW}", PW, ["secret_key="]),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, ["aws_secret_access_key = "]),
    (f"client_secret: {PW}", PW, ["client_secret: "]),
    (f"api_key={PW}", PW, ["api_key="]),
    (f"apikey={PW}", PW, ["apikey="]),
    (f"access_token={PW}", PW, ["access_token="]),
    (f"Authorization: Bearer {PW}", PW, ["Authorization: Bearer "]),
    (f"Authorization: Basic {BASIC}", BASIC, ["Authorization: Basic "]),
    ('Authorization: Digest username="app", response="6629fae49393a053"', "6629fae4", ["Digest"]),
    (f"mysql --password {PW} -h db.example.com", PW, ["--password ", "-h db.example.com"]),
    # a password may begin with one "-" (an option begins with two)
    (
        "mysql --password -x9Secret42 -h db.example.com",
        "-x9Secret42",
        ["--password ", "-h db.example.com"],
    ),
    (f"mysql -u app -p{PW} -h db.example.com", PW, ["-u app -p", "-h db.example.com"]),
    (f"https://{PW}@github.com/org/repo.git", PW, ["https://", "@github.com/org/repo.git"]),
    (json.dumps({"db_password": PW, "host": "db"}), PW, ['"db_password": "', '"host": "db"']),
    # URL userinfo: a password holding @, : and /
    (f"mysql://app:{PW}@db.example.com:3306/orders", PW, ["mysql://app:", "@db.example.com:3306"]),
    ("mysql://app:ab@cd/ef@db.example.com:3306/orders", "ab@cd/ef", ["@db.example.com:3306"]),
    ("postgresql://app:p:a@ss:w@db:5432/orders", "p:a@ss:w", ["postgresql://app:", "@db:5432"]),
    # ODBC, query strings, dict repr, YAML-ish, argv lists, option forms
    (
        f"Driver={{ODBC Driver 18}};Server=db.example.com;UID=app;PWD={PW};Database=orders",
        PW,
        ["Server=db.example.com;UID=app;PWD=", ";Database=orders"],
    ),
    (f"Server=db;Password={{{PW};x}};Database=orders", PW, ["Password={", "Database=orders"]),
    (f"https://api.example.com/v1?user=app&access_token={PW}&page=2", PW, ["&page=2", "user=app"]),
    (repr({"password": PW, "port": 3306}), PW, ["'password': '", "'port': 3306"]),
    (repr({"password": PW.encode()}), PW, ["'password': b'"]),
    (f"sqlalchemy.url: mysql+pymysql://app:{PW}@db/orders", PW, ["app:", "@db/orders"]),
    (repr(["mysql", "--password", PW, "-h", "db"]), PW, ["'--password', '", "'-h', 'db'"]),
    (f"--db-password={PW}", PW, ["--db-password="]),
    (f"sshpass -p {PW} ssh app@bastion", PW, ["sshpass -p ", "ssh app@bastion"]),
    (f"curl -u app:{PW} https://api.example.com/v1", PW, ["curl -u app:", "https://api.example"]),
    (repr(["curl", "--user", f"app:{PW}", "https://x"]), PW, ["'--user', 'app:", "'https://x'"]),
    (f"Config(host='db', password={PW})", PW, ["Config(host='db', password=", ")"]),
    (f"db_password={PW},host=db", PW, [",host=db"]),
    (f"db_password={PW};host=db", PW, [";host=db"]),
    (f"db_password={PW}&host=db", PW, ["&host=db"]),
    (f"db_password={PW} host=db", PW, [" host=db"]),
    ("password=p(a]ss{w)ord", "p(a]ss{w)ord", ["password="]),
    (f'"{{\\"client_secret\\": \\"{PW}\\"}}"', PW, ['\\"client_secret\\": \\"']),
    # camelCase, dashed headers, prefixes and suffixes
    (f"dbPassword: {PW}", PW, ["dbPassword: "]),
    (f"clientSecret={PW}", PW, ["clientSecret="]),
    (f"x-api-key: {PW}", PW, ["x-api-key: "]),
    (f"X-Auth-Token: {PW}", PW, ["X-Auth-Token: "]),
    (f"session_token={PW}", PW, ["session_token="]),
    (f"signing_key={PW}", PW, ["signing_key="]),
    (f"private_key={PW}", PW, ["private_key="]),
    (f"passwd={PW}", PW, ["passwd="]),
    (f"credentials={PW}", PW, ["credentials="]),
    (f"secret_string={PW}", PW, ["secret_string="]),
    (f"Cookie: sessionid={PW}; theme=dark", PW, ["Cookie: "]),
    # shapes
    (f"key id {AWS_ID} in use", AWS_ID, ["key id AKIA", " in use"]),
    (f"{AWS_ID}:{AWS_SECRET}", AWS_SECRET, ["AKIA"]),
    (f"the secret is {AWS_SECRET} here", AWS_SECRET, ["the secret is ", " here"]),
    (f"token {JWT} expired", JWT, ["token ", " expired"]),
    (f"cloned with {GHP}", GHP, ["cloned with ghp_"]),
    (f"posting as {SLACK}", SLACK, ["posting as xoxb-"]),
    (f"key: {PEM}", PEM_BODY, ["-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY"]),
    ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", "XXXXXXXXXXXX", []),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", ["sk_live_"]),
]

# Text that must come out exactly as it went in.
LOOK_ALIKES = [
    "host=db.example.com port=3306 database=orders",
    "mysql://root@127.0.0.1:3306/test",
    "ssh://git@github.com/org/repo.git",
    "https://api.example.com:8443/users/@me",
    "primary_key=order_id",
    "sort_key=created_at, partition_key=tenant",
    "keyboard=us",
    "keys=3",
    "token_count=512",
    "max_tokens=1024",
    "next_token=eyJvZmZzZXQiOjEwMH0",
    "token_type=Bearer",
    "secret_name=prod/orders/db",
    "password_file=/run/secrets/db",
    "passwd_file_path=/etc/app/passwd.txt",
    "password_length=12",
    "open /tmp/secret-notes.txt",
    "/var/task/token_cache.json",
    "author=alice monkey=banana passenger=bob",
    "authority=login.example.com",
    "session_count=4",
    "gcc -pthread -o app",
    "docker run -u 1000:1000 python -u app.py",
    "find . -print",
    "ls --color -la",
    "mysql --password --verbose -h db.example.com",
    "37 sockets to 127.0.0.1:3306 opened at app.py:12 (pymysql.connect)",
    "bearer tokens are checked at the gateway",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "request 8f14e45f-ceea-467f-a1b2-c3d4e5f6a7b8 took 12 ms",
    "thread named 'ThreadPoolExecutor-0_0' (daemon, target=worker) still running",
]
