"""The recording console: browse, search, play and act on the archive in a browser.

`recording-archive console` (commands/console.py) and `recording-archive local` serve it on
127.0.0.1 with the operator's own AWS credentials: `server.ConsoleServer` (a thread of its own),
`app` (the Flask application and its security checks), `data` (what it reads, through the
operator layer). Installed with the CLI only (the `cli` extra), never in a Lambda artifact.
"""
