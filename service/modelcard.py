"""The model card (`model_card.md`) of a DESOM-2 version: written by `skyqa export`, extended by curation publishing.

A curated version keeps its parent's card (data, training, metrics are the same ONNX's) under a new title, with
one "Curation" section per publish appended, so the card reads as the version's history.

Interfaces: `render_card(card) -> str` (`skyqa export`), `with_curation(parent_card, desom1_version,
desom2_version, heading, items) -> str` (curation publishing), `CARD` (the file name).
"""

from __future__ import annotations

CARD = "model_card.md"
SECTIONS = ("data", "training", "metrics", "calibration")


def title(desom1_version: str, desom2_version: str) -> str:
    return f"# skyqa model card: desom1 v{desom1_version} + desom2 v{desom2_version}"


def render_card(card: dict) -> str:
    """A small markdown model card: data, schedule, metrics, time and hardware, for the people who deploy it."""
    lines = [title(card["desom1_version"], card["desom2_version"]), ""]
    extra = [key for key, value in card.items() if isinstance(value, dict) and key not in SECTIONS]
    for section in (*SECTIONS, *extra):
        if section in card:
            lines += [f"## {section[0].upper()}{section[1:]}", ""]
            lines += [f"- {key}: {value}" for key, value in card[section].items()]
            lines.append("")
    lines += ["## Provenance", "", f"- exported: {card['exported_utc']}", f"- hardware: {card['hardware']}", ""]
    lines += ["Labels come from `skyqa curate` (majority vote with a purity threshold over a labelled sample) or",
              "`skyqa adapt` (a few labels spread over the map, see Labels above);",
              "entries marked `expert` in labels.json are hand edits and survive re-curation.",
              "Archive exposures that fail the background check do not vote; served with this version, the same",
              "check makes such exposures BGP. Its limits are this version's calibration.json (derived from the",
              "archive by `skyqa curate --data`); without that file, `Settings.background_check`.",
              "A served Good is also held against the labelled Good archive exposures' seeing and source shapes",
              "(the shape check: BSeeing or BT beyond them), and against their background range (BGP outside it),",
              "with limits from the same file; an exposure in an unlabelled cell is Good within both, otherwise it",
              "stays unlabelled. Without these limits in the file, unchecked. In an archive of several instruments,",
              "one with enough labelled Good exposures has limits of its own (`instruments` in the same file).",
              "The file records the descriptor's measurement version the limits were derived with; a shape limit",
              "whose feature has been measured differently since serves unchecked until re-derived.",
              ""]
    return "\n".join(lines)


def with_curation(parent_card: str, desom1_version: str, desom2_version: str, heading: str, items: list[str]) -> str:
    """The parent's card retitled for the new version, with a curation section (`heading`, one bullet per item)."""
    lines = parent_card.rstrip("\n").splitlines() or [""]
    if lines[0].startswith("# "):
        lines = lines[1:]
    section = ["", f"## Curation: desom2 v{desom2_version}", "", heading, "", *[f"- {item}" for item in items]]
    return "\n".join([title(desom1_version, desom2_version), *lines, *section]) + "\n"
