"""A web page's bytes to its title and readable text, in time linear in the page's size.

`decode` turns the body into text by the charset the page declares, accepting only real text
encodings (a page declaring `rot13`, `base64` or `idna` is read as UTF-8). `extract_text` walks
the HTML with one tokenizer regex in which every construct always matches and runs on to the end
of the input when it is left open (an unclosed `<!--` or `<a` swallows the rest, as in a
browser), so no input makes it rescan: the standard library's `html.parser` is quadratic on such
input and raises on some (`<![<![`). It keeps visible text, drops scripts, styles, navigation,
headers, footers, forms and hidden elements, and prefers the text inside `<main>`/`<article>`.

It does not build a DOM, run scripts, apply CSS beyond inline `display:none`-style hiding, or
clean the text it returns (`tools.web_text.sanitize` does, entities included).
"""

from __future__ import annotations

import codecs
import contextlib
import html
import re
import time

MAX_PARSED_CHARS = 1_000_000
"""Characters of a page parsed at most; the rest is ignored."""

# The charsets of the WHATWG Encoding Standard (what browsers accept), plus ASCII, Latin-1 and
# UTF-32, by Python codec name; everything else a page may declare is ignored.
_CHARSETS = frozenset(
    codecs.lookup(name).name
    for name in (
        "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "ascii", "latin-1",
        *(f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16)),
        *(f"cp{n}" for n in (866, 874, 932, 949, 950, 1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 1258)),
        "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "gbk", "gb2312", "gb18030", "big5", "big5hkscs",
        "euc-jp", "euc-kr", "iso2022-jp", "shift-jis",
    )
)  # fmt: skip
_HEADER_CHARSET = re.compile(r"charset=[\"']?([\w.:-]{1,40})", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset=[\"']?([\w.:-]{1,40})", re.I)


def decode(body: bytes, content_type: str) -> str:
    """The body as text, in the charset the Content-Type header or a `<meta>` names, else UTF-8.

    Undecodable bytes become U+FFFD; a charset that is not a text encoding counts as unnamed.
    """
    declared = _HEADER_CHARSET.search(content_type[:1000]) or _META_CHARSET.search(body[:4096])
    encoding = "utf-8"
    if declared:
        name = declared.group(1)
        with contextlib.suppress(LookupError):
            found = codecs.lookup(name.decode("ascii") if isinstance(name, bytes) else name).name
            encoding = found if found in _CHARSETS else encoding
    return body.decode(encoding, errors="replace")


# Each alternative either matches at a `<` or is text, and none can fail part-way, so `match`
# never backtracks over more than the token it returns. Possessive quantifiers keep it so.
_TOKEN = re.compile(
    r"""
      (?P<comment> <!--.*?(?:-->|\Z) )
    | (?P<tag> <(?P<end>/?)(?P<name>[A-Za-z][^\s/>]*+)
               (?P<attrs>(?:[^>"'=]++|=\s*+(?:"[^"]*+"?|'[^']*+'?)?|["'])*+) >? )
    | (?P<bogus> <[/!?][^>]*+>? )
    | (?P<text> (?:[^<]|<(?![A-Za-z/!?]))++ )
    """,
    re.S | re.X,
)
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]++)(?:\s*+=\s*+(?:"([^"]*+)"?|'([^']*+)'?|([^\s>]*+)))?""")
_RAW_END = {name: re.compile(rf"</{name}[\s/>]", re.I) for name in ("script", "style", "textarea", "title",
            "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext")}  # fmt: skip
"""Elements whose content is text up to their end tag, never markup: scripts can hold `<p>`."""

_DROPPED = {"template", "svg", "canvas", "object", "nav", "header", "footer", "aside", "form", "button",
            "select"}  # fmt: skip
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCKS = {"address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "h1", "h2", "h3",
           "h4", "h5", "h6", "hr", "li", "main", "ol", "p", "pre", "section", "table", "td", "th", "tr",
           "ul"}  # fmt: skip


class ParseTimeout(Exception):
    """The page was still being parsed when the caller's deadline passed."""


def _attributes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(text):
        name, *values = match.groups()
        found.setdefault(name.lower(), html.unescape(next((v for v in values if v is not None), "")))
    return found


def _hidden(text: str) -> bool:
    # Hidden text is a favourite carrier of injected instructions: a reader never sees it.
    lowered = text.lower()
    if "hidden" not in lowered and "none" not in lowered:
        return False  # the common case, without parsing the attributes
    attributes = _attributes(text)
    style = attributes.get("style", "").replace(" ", "").lower()
    return (
        "hidden" in attributes
        or attributes.get("aria-hidden") == "true"
        or "display:none" in style
        or "visibility:hidden" in style
    )


def extract_text(page: str, *, deadline: float | None = None) -> tuple[str, str]:
    """`(title, text)` of an HTML page: visible text, the main content when the page marks it.

    Only the first `MAX_PARSED_CHARS` characters are read. Entities are left as written. Raises
    `ParseTimeout` when `deadline` (a `time.monotonic()` value) passes first.
    """
    page = page[:MAX_PARSED_CHARS]
    title: list[str] = []
    text: list[str] = []
    main: list[str] = []
    in_main = 0
    dropping, depth = "", 0  # the tag whose subtree is dropped, and its nesting
    position, tokens = 0, 0
    while (token := _TOKEN.match(page, position)) is not None:
        tokens += 1
        if deadline is not None and not tokens % 4096 and time.monotonic() > deadline:
            raise ParseTimeout
        position, kind = token.end(), token.lastgroup
        if kind == "text":
            if not dropping:
                text.append(token[0])
                if in_main:
                    main.append(token[0])
            continue
        if kind != "tag":
            continue  # comment, doctype, CDATA, processing instruction
        name, closing = token["name"].lower(), bool(token["end"])
        if not closing and name in _RAW_END:  # its content is skipped, the end tag read next
            ended = _RAW_END[name].search(page, position)
            content, position = page[position : ended.start() if ended else None], ended.start() if ended else len(page)
            if name == "title" and not dropping:
                title.append(content)
            continue
        if dropping:
            if name == dropping:
                depth += -1 if closing else 1
                dropping = dropping if depth else ""
            continue
        if closing:
            mark = "\n" if name in _BLOCKS else ""
        elif name not in _VOID and (name in _DROPPED or _hidden(token["attrs"])):
            if not token["tag"].endswith("/>"):  # `<svg/>` has no subtree to drop
                dropping, depth = name, 1
            continue
        else:
            in_main += name in ("main", "article")
            mark = "\n- " if name == "li" else "\n" if name in _BLOCKS else ""
        if mark:
            text.append(mark)
            if in_main:
                main.append(mark)
        if closing and name in ("main", "article") and in_main:
            in_main -= 1
    body = "".join(main)
    # A <main> of a few words is a site's chrome, not its content.
    return "".join(title), body if len(body.strip()) >= 200 else "".join(text)
