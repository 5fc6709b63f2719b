"""Write openapi.json: the callback endpoint's OpenAPI description, from the Powertools resolver.

    python scripts/gen_openapi.py          # rewrite openapi.json
    python scripts/gen_openapi.py --check  # exit 1 if openapi.json is out of date

tests/reliability/test_openapi.py fails when the committed file differs from what this renders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "openapi.json"


def render() -> str:
    from recording_archive.handlers.recording_callback import openapi_resolver

    schema = json.loads(
        openapi_resolver().get_openapi_json_schema(
            title="plivo-recording-archive callback API",
            version="1.0.0",
            description=(
                "Receives Plivo number-masking recording callbacks (signature V3). Every answer "
                "is JSON; nothing is written for a rejected request."
            ),
        )
    )
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if openapi.json is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text("utf-8") if OUTPUT.exists() else ""
        if current != text:
            print("openapi.json is out of date: run python scripts/gen_openapi.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, "utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
