"""Writing the document model as Markdown and as HTML (inline stylesheet, no script, all escaped)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from ._blocks import Bilingual, Block, Heading, Inline, Items, Notice, Para, Table

# ------------------------------------------------------------------------------------------------
# Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def _md_text(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_inline(spans: Inline) -> str:
    out = []
    for kind, text in spans:
        if kind == "anchor":
            out.append(f'<a id="{text}"></a>')
        elif kind == "code":
            out.append(f"`{text}`")
        elif kind == "bold":
            core = text.rstrip()
            out.append(f"**{_md_text(core)}**{text[len(core):]}")
        elif kind == "link":
            target, _, label = text.partition("|")
            out.append(f"[{_md_text(label)}]({target})" if label else f"<{target}>")
        else:
            out.append(_md_text(text))
    return "".join(out)


def _md_quote(text: str) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n\n"):
        if lines:
            lines.append(">")
        lines.append("> " + _md_text(para.strip()))
    return lines


def to_markdown(doc: Sequence[Block]) -> str:
    out: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            if block.level > 1:
                out.append(f'<a id="{block.anchor}"></a>')
                out.append("")
            out += ["#" * block.level + " " + _md_inline(block.content), ""]
        elif isinstance(block, Notice):
            out.append(f"> **{_md_text(block.title)}**")
            for _, text in block.paragraphs:
                out += [">", "> " + _md_text(text)]
            out.append("")
        elif isinstance(block, Para):
            out += [_md_inline(block.content), ""]
        elif isinstance(block, Bilingual):
            for _, label, text in block.columns:
                if text:
                    out += [f"{label}:", ""] + _md_quote(text) + [""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(_md_inline(h) for h in block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            for row in block.rows:
                out.append("| " + " | ".join(_md_inline(c) for c in row) + " |")
            out.append("")
        elif isinstance(block, Items):
            for i, item in enumerate(block.items, 1):
                bullet = f"{i}." if block.ordered else "-"
                if isinstance(item, tuple):
                    head, subs = item
                    out.append(f"{bullet} {_md_inline(head)}")
                    out += [f"  - {_md_inline(s)}" for s in subs]
                else:
                    out.append(f"{bullet} {_md_inline(item)}")
            out.append("")
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# HTML

CSS = """
body { font: 16px/1.55 -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC", sans-serif;
       max-width: 72rem; margin: 2rem auto; padding: 0 1.25rem; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.7rem; margin-bottom: .5rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { font-size: 1.2rem; background: #f3f5f8; padding: .4rem .6rem; margin-top: 2.2rem; border-left: 4px solid #4a6fa5; }
h4 { font-size: 1.02rem; margin: 1.4rem 0 .4rem; }
code { font: .88em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; background: #f4f4f4;
       padding: .05em .3em; border-radius: 3px; word-break: break-word; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .93rem; }
th, td { border: 1px solid #d9d9d9; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f7f7f7; }
ul, ol { padding-left: 1.4rem; } li { margin: .2rem 0; }
.notice { border: 3px solid #b00020; background: #fff4f4; padding: .8rem 1rem; margin: 1rem 0 1.5rem; }
.notice strong.title { display: block; color: #b00020; font-size: 1.15rem; margin-bottom: .4rem; }
.notice p { margin: .4rem 0; }
.law { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; margin: .6rem 0 1rem; }
.law > div { border: 1px solid #e0e0e0; background: #fafafa; padding: .5rem .8rem; }
.law .label { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: #666; }
.law [lang="zh"] { font-size: 1.04rem; line-height: 1.8; }
p.meta { color: #555; font-size: .92rem; }
p.warn { color: #b00020; font-weight: 600; }
nav.toc { font-size: .92rem; columns: 2; }
@media (max-width: 52rem) { .law { grid-template-columns: 1fr; } nav.toc { columns: 1; } }
@media print { body { max-width: none; } h3 { break-before: auto; } }
""".strip()


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_inline(spans: Inline) -> str:
    out = []
    for kind, text in spans:
        if kind == "anchor":
            out.append(f'<a id="{_esc(text)}"></a>')
        elif kind == "code":
            out.append(f"<code>{_esc(text)}</code>")
        elif kind == "bold":
            out.append(f"<strong>{_esc(text)}</strong>")
        elif kind == "link":
            target, _, label = text.partition("|")
            if not (target.startswith(("http://", "https://", "#"))):
                out.append(_esc(label or target))
            else:
                out.append(f'<a href="{_esc(target)}">{_esc(label or target)}</a>')
        else:
            out.append(_esc(text))
    return "".join(out)


def _html_paras(text: str) -> str:
    return "".join(f"<p>{_esc(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def to_html(doc: Sequence[Block], title: str) -> str:
    body: list[str] = []
    toc = [b for b in doc if isinstance(b, Heading) and b.level in (2, 3)]
    for block in doc:
        if isinstance(block, Heading):
            body.append(f'<h{block.level} id="{_esc(block.anchor)}">{_html_inline(block.content)}</h{block.level}>')
        elif isinstance(block, Notice):
            paras = "".join(f'<p lang="{_esc(lang)}">{_esc(text)}</p>' for lang, text in block.paragraphs)
            body.append(f'<div class="notice" role="note"><strong class="title">{_esc(block.title)}</strong>{paras}</div>')
            body.append('<nav class="toc"><ul>' + "".join(
                f'<li><a href="#{_esc(h.anchor)}">{_html_inline(h.content)}</a></li>' for h in toc if h.level == 2) + "</ul></nav>")
        elif isinstance(block, Para):
            cls = f' class="{_esc(block.css)}"' if block.css else ""
            body.append(f"<p{cls}>{_html_inline(block.content)}</p>")
        elif isinstance(block, Bilingual):
            cols = [f'<div lang="{_esc(lang)}"><div class="label">{_esc(label)}</div>{_html_paras(text)}</div>'
                    for lang, label, text in block.columns if text]
            body.append('<div class="law">' + "".join(cols) + "</div>")
        elif isinstance(block, Table):
            cells = "".join(f"<th>{_html_inline(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            thead = f"<thead><tr>{cells}</tr></thead>" if any(h and h[0][1] for h in block.header) else ""
            body.append(f"<table>{thead}<tbody>{rows}</tbody></table>")
        elif isinstance(block, Items):
            tag = "ol" if block.ordered else "ul"
            lis = []
            for item in block.items:
                if isinstance(item, tuple):
                    head, subs = item
                    lis.append(f"<li>{_html_inline(head)}<ul>" + "".join(f"<li>{_html_inline(s)}</li>" for s in subs) + "</ul></li>")
                else:
                    lis.append(f"<li>{_html_inline(item)}</li>")
            body.append(f"<{tag}>" + "".join(lis) + f"</{tag}>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


