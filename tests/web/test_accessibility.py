"""Every page, in Chromium, as each role: each form control and button has an accessible name,
every image its text, the page one h1 and headings in order, a language; and the keyboard
reaches everything from the skip link on, with a visible focus and no trap."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.web.conftest import Served, signed_in
from tests.web.workshop import Account

# Run in the page: what an assistive technology would miss. Names are approximated the way the
# accessible-name algorithm starts: aria-labelledby, aria-label, a <label>, then the content.
CHECK = """() => {
  const problems = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const text = (el) => (el.innerText || el.textContent || "").trim();
  const named = (el) => {
    const by = el.getAttribute("aria-labelledby");
    if (by) return by.split(/\\s+/).every((id) => document.getElementById(id) && text(document.getElementById(id)));
    if ((el.getAttribute("aria-label") || "").trim()) return true;
    if (el.labels && Array.from(el.labels).some((label) => text(label))) return true;
    return false;
  };
  const describe = (el) => el.outerHTML.slice(0, 120);
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!named(el)) problems.push("control without a label: " + describe(el));
  }
  for (const el of document.querySelectorAll("button, a[href], summary")) {
    if (!named(el) && !text(el)) problems.push("nameless " + el.tagName.toLowerCase() + ": " + describe(el));
  }
  for (const el of document.querySelectorAll("img")) {
    if (!el.hasAttribute("alt")) problems.push("image without alt: " + describe(el));
  }
  for (const el of document.querySelectorAll("svg")) {
    const hidden = el.getAttribute("aria-hidden") === "true" || el.closest("[aria-hidden=true]");
    if (!hidden && !(el.getAttribute("role") === "img" && named(el))) problems.push("svg without a name: " + describe(el));
  }
  for (const el of document.querySelectorAll("table")) {
    const caption = el.querySelector("caption");
    if (!(caption && text(caption)) && !named(el)) problems.push("table without a caption: " + describe(el));
  }
  const h1 = document.querySelectorAll("h1");
  if (h1.length !== 1) problems.push(h1.length + " h1 elements");
  let level = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const next = Number(h.tagName[1]);
    if (next > level + 1) problems.push("heading h" + next + " after h" + level + ": " + text(h));
    level = next;
  }
  if (!["fr", "en"].includes(document.documentElement.lang)) problems.push("no lang on <html>");
  const ids = new Map();
  for (const el of document.querySelectorAll("[id]")) ids.set(el.id, (ids.get(el.id) || 0) + 1);
  for (const [id, count] of ids) if (count > 1) problems.push("id used " + count + " times: " + id);
  if (!document.querySelector("a.skip[href='#main']")) problems.push("no skip link");
  if (!document.querySelector("main#main")) problems.push("no main landmark");
  return problems.filter((p) => p);
}"""

MEMBER = ["/me", "/me/sessions", "/live"]
TRAINER = ["/training", "/training?member=2"]
TREASURER = [
    "/billing", "/billing/prices", "/billing/close", "/billing/invoices", "/billing/payments",
    "/billing/exports", "/billing/report", "/manage/organisations",
]  # fmt: skip
MANAGER = ["/manage", "/manage/members/2", "/manage/badges", "/manage/machines", "/manage/organisations"]


def problems_on(page: Page, path: str) -> list[str]:
    page.goto(path)
    found: list[str] = page.evaluate(CHECK)
    return [f"{path}: {problem}" for problem in found]


def _account(served: Served, role: str) -> Account:
    account: Account = getattr(served.workshop, role)
    return account


@pytest.mark.parametrize(
    ("role", "paths"),
    [("member", MEMBER), ("trainer", TRAINER), ("treasurer", TREASURER), ("manager", MANAGER)],
)
@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_page_is_named_and_ordered(
    browser: Browser, served: Served, role: str, paths: list[str], language: str
) -> None:
    with signed_in(browser, served, _account(served, role)) as page:
        page.goto(f"/lang/{language}?next=/me")
        found = [problem for path in paths for problem in problems_on(page, path)]
    assert found == []


def test_the_sign_in_page_is_named_and_ordered(browser: Browser, served: Served) -> None:
    context = browser.new_context(base_url=served.url)
    try:
        page = context.new_page()
        assert problems_on(page, "/login") == []
    finally:
        context.close()


FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    tag: el.tagName.toLowerCase(), id: el.id, cls: el.className, text: (el.innerText || el.value || "").trim().slice(0, 40),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
    shown: box.width > 0 && box.height > 0,
  };
}"""


def _tab_through(page: Page, limit: int = 400) -> list[dict[str, Any]]:
    """Press Tab until focus leaves the page (or comes back to where it began)."""
    seen: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS)
        if focused is None or (seen and focused == seen[0]):
            return seen
        seen.append(focused)
    raise AssertionError(f"focus never left the page after {limit} presses of Tab: a keyboard trap?")


@pytest.mark.parametrize(("role", "path"), [("member", "/me"), ("trainer", "/training"),
                                            ("treasurer", "/billing/prices"), ("manager", "/manage/badges")])  # fmt: skip
def test_the_keyboard_reaches_everything_with_a_visible_focus(
    browser: Browser, served: Served, role: str, path: str
) -> None:
    with signed_in(browser, served, _account(served, role)) as page:
        page.goto(path)
        page.keyboard.press("Tab")
        first = page.evaluate(FOCUS)
        assert first is not None
        assert "skip" in first["cls"], first
        assert first["shown"], first
        assert first["outline"], first
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        stops = _tab_through(page)
        assert len(stops) > 3
        hidden = [stop for stop in stops if not (stop["outline"] and stop["shown"])]
        assert hidden == [], "focus not visible on these"
