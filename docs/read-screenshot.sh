#!/usr/bin/env bash
# Re-take docs/read-attention.png (the README's screenshot): the attention page from CausalAttention down,
# 1200 px wide, in headless Chromium, reduced to a 48-colour PNG. Run from the repository root after `make read`.
set -euo pipefail
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chromium() {
    command chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
        --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$tmp/profile" "$@" 2>/dev/null
}
# Where the CausalAttention heading sits (a copy of the page that writes it into the DOM).
sed 's#</body>#<script>document.body.insertAdjacentHTML("beforeend", "<pre id=y>" + Math.round(document.getElementById("CausalAttention").getBoundingClientRect().top + scrollY) + "</pre>");</script></body>#' \
    site/attention.html > "$tmp/probe.html"
y=$(chromium --window-size=1200,900 --dump-dom "file://$tmp/probe.html" | sed -n 's#.*<pre id="y">\([0-9]*\)</pre>.*#\1#p')
chromium --window-size=1200,$((y + 800)) --screenshot="$tmp/tall.png" "file://$PWD/site/attention.html"
"$PY" - "$tmp/tall.png" "$y" <<'PYEOF'
import sys
from PIL import Image
image, top = Image.open(sys.argv[1]).convert("RGB"), int(sys.argv[2]) - 8
image.crop((0, top, 1200, top + 720)).quantize(colors=48).save("docs/read-attention.png", optimize=True)
PYEOF
