#!/usr/bin/env bash
# The "open a chapter in Jupyter" path, in a real browser (make lab-check):
#   1. start JupyterLab as `make lab` does (this checkout's .venv, its Lab settings), headless,
#      on 127.0.0.1, a free port, a random token, with fresh Jupyter config, data, runtime,
#      settings and workspace folders under a temporary folder (the user's are not read or
#      touched) and the claims ledger written there too;
#   2. tests/browser/lab_check.mjs opens the chapter in headless Chromium from the file
#      browser, as a notebook, runs all cells and checks them (see that file);
#   3. checks the ledger (every claim of the chapter recorded, all passed) and that the run
#      left nothing in the repository (no .ipynb, no checkpoint, no rewritten chapter);
#   4. stops the server and its kernels whatever happened (trap), and removes the folder.
#
# Usage: tests/browser/lab_check.sh [notebooks/01_entropic_loss.md]
# Env:   VENV (.venv), CHROMIUM, SCREENSHOTS=<dir> (PNGs of Lab), LAB_CHECK_TIMEOUT_S (900),
#        KEEP=1 keeps the temporary folder (server log, ledger).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
chapter=${1:-notebooks/01_entropic_loss.md}
venv=${VENV:-.venv}
jupyter=$root/$venv/bin/jupyter
python=$root/$venv/bin/python
test -f "$chapter" || { echo "lab-check: no chapter $chapter"; exit 2; }
test -x "$jupyter" || { echo "lab-check: no $jupyter (run make install)"; exit 2; }
started=$(date +%s)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ntbook-lab.XXXXXX")
server=""
kernels=""
status=1

stop_server() {
  [ -n "$server" ] || return 0
  if kill -0 "$server" 2>/dev/null; then
    kernels=$(pgrep -P "$server" | tr '\n' ' ' || true)  # kernels are the server's children
    kill -TERM "$server" 2>/dev/null || true  # Jupyter shuts its kernels down on SIGTERM
    for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$server" 2>/dev/null; then
      echo "lab-check: server $server did not stop in 20 s: killed"
      kill -KILL -- "-$server" 2>/dev/null || kill -KILL "$server" 2>/dev/null || true
    fi
  fi
  for pid in $kernels; do  # a kernel left behind (its own process group): by id
    kill -0 "$pid" 2>/dev/null && { echo "lab-check: kernel $pid left running: killed"; kill -KILL "$pid" 2>/dev/null || true; }
  done
  server=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  if [ "$rc" -ne 0 ] && [ -f "$tmp/server.log" ]; then
    echo "lab-check: last lines of the server log ($tmp/server.log):"
    tail -n 40 "$tmp/server.log" | sed 's/^/  | /'
  fi
  if [ -n "${KEEP:-}" ]; then echo "lab-check: kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What the repository holds before the run (tracked changes and ignored files included).
before=$(git status --porcelain --ignored --untracked-files=all -- notebooks)

mkdir -p "$tmp/user-settings/@jupyterlab/apputils-extension" "$tmp/checkpoints" "$tmp/claims"
# Check-only user settings: no news or update pop-up over the notebook.
echo '{"fetchNews": "false", "checkForUpdates": false}' \
  > "$tmp/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
export JUPYTER_CONFIG_DIR=$tmp/config JUPYTER_DATA_DIR=$tmp/data JUPYTER_RUNTIME_DIR=$tmp/runtime \
       JUPYTERLAB_SETTINGS_DIR=$tmp/user-settings JUPYTERLAB_WORKSPACES_DIR=$tmp/workspaces \
       IPYTHONDIR=$tmp/ipython NTLIB_CLAIMS_DIR=$tmp/claims
unset JPY_SESSION_NAME
token=$("$python" -c "import secrets; print(secrets.token_hex(24))")
export JUPYTER_TOKEN=$token

# The server in its own session (setsid: its pid is its process group), logs to a file.
# Root needs --allow-root (CI runs as root); nobody else gets it.
args=(lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=0 --ServerApp.port_retries=0
      --ServerApp.root_dir="$root" --LabApp.news_url=None
      --LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate
      --LabApp.expose_app_in_browser=True
      --AsyncFileCheckpoints.checkpoint_dir="$tmp/checkpoints")
[ "$(id -u)" = 0 ] && args+=(--allow-root)
setsid "$jupyter" "${args[@]}" >"$tmp/server.log" 2>&1 </dev/null &
server=$!

# Wait for the server's runtime file (written once it listens), then for its API.
info="$tmp/runtime/jpserver-$server.json"
for _ in $(seq 1 600); do
  [ -s "$info" ] && break
  kill -0 "$server" 2>/dev/null || { echo "lab-check: the server exited"; exit 1; }
  sleep 0.2
done
[ -s "$info" ] || { echo "lab-check: the server did not start in 120 s"; exit 1; }
url=$("$python" -c "import json, sys; print(json.load(open(sys.argv[1]))['url'])" "$info")
"$python" - "$url" "$token" <<'PY'
import sys, time, urllib.request
url, token = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + "api/status", headers={"Authorization": f"token {token}"})
for _ in range(240):
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit("lab-check: the server API did not answer")
PY
echo "lab-check: JupyterLab up at $url in $(( $(date +%s) - started )) s (pid $server)"

# The browser part: open, run all, check.
LAB_URL=$url LAB_TOKEN=$token timeout "${LAB_CHECK_TIMEOUT_S:-900}" \
  node tests/browser/lab_check.mjs "$chapter"

stop_server

# The chapter's claims ledger, written by the Lab kernel: present, and every claim passed.
"$python" - "$tmp/claims" "$chapter" <<'PY'
import json, re, sys
from pathlib import Path
folder, chapter = Path(sys.argv[1]), Path(sys.argv[2])
code = chapter.read_text(encoding="utf-8")
name = re.search(r'book\.setup\("(ch\d+)"\)', code).group(1)
ledger = folder / f"{name}.json"
if not ledger.is_file():
    sys.exit(f"lab-check: no claims ledger {name}.json written by the Lab kernel")
claims = json.loads(ledger.read_text())["claims"]
failed = [c["id"] for c in claims if not c["passed"]]
if not claims or failed:
    sys.exit(f"lab-check: ledger {name}: {len(claims)} claims, failed: {failed}")
print(f"lab-check: ledger {name}: {len(claims)} claims, all passed")
PY

# Nothing written into the repository: no .ipynb, no checkpoint, no rewritten chapter.
after=$(git status --porcelain --ignored --untracked-files=all -- notebooks)
if [ "$before" != "$after" ]; then
  echo "lab-check: the Lab run changed notebooks/ (git status):"
  diff <(echo "$before") <(echo "$after") || true
  exit 1
fi
echo "lab-check: notebooks/ unchanged (git status)"
echo "lab-check: passed in $(( $(date +%s) - started )) s"
