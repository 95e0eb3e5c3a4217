"""``OUT/index.html``: a contact sheet of every finished run folder, with relative links."""

from __future__ import annotations

import html
from pathlib import Path

from clipgen.atomic import write_text
from clipgen.outputs.run_record import read_record

_STYLE = ("body{font-family:sans-serif;display:flex;flex-wrap:wrap;gap:12px}"
          "figure{width:256px;margin:0}img{width:256px;image-rendering:pixelated}")


def write_index(out: Path) -> Path:
    cards = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        record = read_record(folder)
        if not record or record.get("status") != "finished":
            continue
        image = Path(record["files"]["image"])
        rel = f"{folder.name}/{image.name}"
        # Prompts are user text: everything that reaches the page is escaped.
        cards.append(
            f'<figure><a href="{html.escape(rel)}"><img src="{html.escape(rel)}" loading="lazy"></a>'
            f"<figcaption><b>{html.escape(record.get('prompt', ''))}</b><br>seed {record.get('seed')} · "
            f"score {record.get('final_similarity', 0):.3f} · {record.get('seconds', 0):.1f} s · "
            f'<a href="{html.escape(folder.name)}/run.json">run.json</a></figcaption></figure>')
    page = f"<!doctype html><meta charset='utf-8'><title>clipgen batch</title><style>{_STYLE}</style>" + "".join(cards)
    path = out / "index.html"
    write_text(path, page)
    return path
