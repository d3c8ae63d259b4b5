"""Write a deterministic web-server style log (text lines) for the ``sort`` corpus source.

Usage: gen_log.py OUT.log [LINES]
"""

import random
import sys

out = sys.argv[1]
lines = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rng = random.Random(7)
paths = ["/", "/index.html", "/api/v1/users", "/api/v1/orders", "/static/app.js", "/static/app.css",
         "/login", "/logout", "/search", "/img/logo.png", "/api/v2/items", "/health"]
agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "curl/8.5.0",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15", "python-requests/2.32"]
with open(out, "w") as f:
    t = 1_700_000_000
    for i in range(lines):
        t += rng.randint(0, 3)
        ip = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        f.write(f'{ip} - - [{t}] "{rng.choice(["GET", "GET", "GET", "POST"])} {rng.choice(paths)}'
                f'?id={rng.randint(1, 99999)} HTTP/1.1" {rng.choice([200, 200, 200, 304, 404, 500])} '
                f'{rng.randint(0, 50000)} "{rng.choice(agents)}"\n')
