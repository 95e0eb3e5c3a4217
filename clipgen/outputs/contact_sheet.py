"""Contact sheets: ``OUT/index.html`` of every finished run folder (``batch``), and a prior
run's ``index.html`` of its scored candidates; relative links, every text escaped."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from clipgen.atomic import write_text
from clipgen.outputs.run_record import read_record

_STYLE = ("body{font-family:sans-serif;display:flex;flex-wrap:wrap;gap:12px}"
          "figure{width:256px;margin:0}img{width:256px;image-rendering:pixelated}"
          "figure.kept{outline:3px solid #2a7}")


@dataclass(frozen=True)
class Card:
    image: str  # relative to the page
    title: str
    lines: tuple[str, ...] = ()
    link: tuple[str, str] | None = None  # (text, relative href)
    highlight: bool = False


def write_cards(path: Path, title: str, cards: list[Card]) -> Path:
    """An HTML page of image cards. Prompts and paths are user text: all of it is escaped."""
    parts = []
    for card in cards:
        caption = "<br>".join([f"<b>{html.escape(card.title)}</b>", *(html.escape(line) for line in card.lines)])
        if card.link is not None:
            caption += f' · <a href="{html.escape(card.link[1])}">{html.escape(card.link[0])}</a>'
        css = ' class="kept"' if card.highlight else ""
        src = html.escape(card.image)
        parts.append(f'<figure{css}><a href="{src}"><img src="{src}" loading="lazy"></a>'
                     f"<figcaption>{caption}</figcaption></figure>")
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style>"
            + "".join(parts))
    write_text(path, page)
    return path


def held_out_lines(scores: dict) -> tuple[str, ...]:
    """``held-out NAME 0.812 · augmented 0.790`` for each --eval-clip model of a run."""
    return tuple(f"held-out {name} {s['score']:.3f}" + (f" · augmented {s['augmented']:.3f}" if "augmented" in s else "")
                 for name, s in scores.items())


def write_index(out: Path) -> Path:
    cards = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        record = read_record(folder)
        image_file = (record or {}).get("files", {}).get("image")
        if not record or record.get("status") != "finished" or not image_file:
            continue
        image = Path(image_file)
        lines = (f"seed {record.get('seed')} · score {record.get('final_similarity', 0):.3f} · "
                 f"{record.get('seconds', 0):.1f} s",) + held_out_lines(record.get("held_out") or {})
        cards.append(Card(f"{folder.name}/{image.name}", record.get("prompt", ""), lines,
                          ("run.json", f"{folder.name}/run.json")))
    return write_cards(out / "index.html", "clipgen batch", cards)
