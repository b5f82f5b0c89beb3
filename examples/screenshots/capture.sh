#!/bin/sh
# How the README's screenshots were made: a real run in a real terminal (tmux), its screen turned
# into an SVG by rich and photographed by headless Chromium; then the HTML trace of that same run.
# Needs tmux and chromium (apt-get install tmux chromium). Run from the repository root.
set -eu
out=examples/screenshots
work=$(mktemp -d)
tmux kill-session -t qwq-shot 2>/dev/null || true
tmux new-session -d -s qwq-shot -x 100 -y 18
tmux send-keys -t qwq-shot "cd $work && PS1='$ ' PATH=$PWD/.venv/bin:\$PATH exec sh" Enter
sleep 1
tmux send-keys -t qwq-shot "clear" Enter
sleep 1
tmux send-keys -t qwq-shot "qwq-agent solve 'What is 37 * 89 + 12?' --seed 0 --trace run.jsonl" Enter
until [ -f "$work/run.jsonl" ] && grep -q '"type": "final"' "$work/run.jsonl"; do sleep 1; done
sleep 2
tmux capture-pane -t qwq-shot -p -e > "$work/screen.ansi"
tmux kill-session -t qwq-shot
.venv/bin/python - "$work/screen.ansi" "$work/terminal.svg" <<'PY'
import io, sys
from rich.console import Console
from rich.text import Text
screen = open(sys.argv[1], encoding="utf-8").read().rstrip()
console = Console(record=True, width=100, file=io.StringIO(), force_terminal=True, color_system="truecolor")
console.print(Text.from_ansi(screen))
console.save_svg(sys.argv[2], title="qwq-agent solve")
PY
size() { sed -n 's/.*viewBox="0 0 \([0-9.]*\) \([0-9.]*\)".*/\1 \2/p' "$1" | head -1 | awk '{printf "%d,%d", $1+1, $2+1}'; }
shot() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --disable-background-networking \
  --user-data-dir="$work/profile" --window-size="$2" --screenshot="$3" "file://$1" 2>/dev/null; }
shot "$work/terminal.svg" "$(size "$work/terminal.svg")" "$out/terminal.png"
.venv/bin/qwq-agent trace html "$work/run.jsonl" -o "$work/run.html"
shot "$work/run.html" 1000,720 "$out/trace.png"
echo "wrote $out/terminal.png and $out/trace.png"
