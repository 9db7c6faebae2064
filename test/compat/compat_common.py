"""What the Python compatibility clients share: the package version they
report, the common flags, and the one verdict every client is held to."""

import json
import subprocess


def pkg_version(name):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name],
                              capture_output=True, text=True, check=True).stdout
    except Exception:
        return "unknown"


def add_common_args(ap):
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for all records")
    ap.add_argument("--second-poll", type=float, default=5.0, help="seconds the second member polls")


def new_result(client, version, package):
    return {
        "client": client, "version": version, "package": package,
        "produced": 0, "consumed": 0, "duplicates": 0,
        "second_member_records": -1, "ok": False,
    }


def finish(result, run, count):
    """Runs the scenario, prints the one-line JSON verdict, returns the exit
    code: exact counts, no duplicate, nothing for the second member."""
    try:
        run()
    except Exception as e:  # report, never hide
        result["error"] = "%s: %s" % (type(e).__name__, e)
    result["ok"] = (
        "error" not in result
        and result["produced"] == count
        and result["consumed"] == count
        and result["duplicates"] == 0
        and result["second_member_records"] == 0
    )
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1
