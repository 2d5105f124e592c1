"""End to end in Debian's Chromium, driven by Playwright: the page as a person uses it.

Run alone with ``pytest -m browser tests/web``. Playwright never downloads a
browser here: it drives /usr/bin/chromium.
"""

import os
import re

import pytest

from web_helpers import b64, serving

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
THUMBNAILS_LOADED = """n => {
    const images = [...document.querySelectorAll('#results img')].slice(0, n);
    return images.length === n && images.every(i => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh page; ``page.problems`` collects script errors, CSP violations and failed loads."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1000, "height": 600})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    yield page
    page.wait_for_load_state("networkidle")  # let lazy thumbnails finish before the browser hangs up
    context.close()


def ids_shown(page):
    return [int(i) for i in page.locator("#results a.result").evaluate_all("links => links.map(a => a.dataset.id)")]


def test_search_upload_more_like_this_and_back(page, bundle, photo_paths, photo_root, ids_by_path):
    page.goto("/")
    expect(page.locator("#status")).to_contain_text("Type a description")
    page.locator("#q").blur()
    page.keyboard.press("/")  # the keyboard shortcut focuses the box
    page.keyboard.type("a dog on a beach")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=a%20dog%20on%20a%20beach$"))
    expect(page.locator("#results li")).to_have_count(24)
    page.wait_for_function(THUMBNAILS_LOADED, arg=6)
    expect(page.locator("#status")).to_contain_text(f"24 of {bundle.count} photos")
    text_ids = ids_shown(page)

    page.locator("#sentinel").scroll_into_view_if_needed()  # scrolling loads the next page
    expect(page.locator("#results li")).to_have_count(bundle.count)
    expect(page.locator("#more")).to_be_hidden()

    photo = photo_paths[5]
    page.set_input_files("#file", str(photo))
    uploaded_id = ids_by_path[photo.relative_to(photo_root).as_posix()]
    expect(page).to_have_url(re.compile(r"\?upload=\w+$"))
    first = page.locator("#results a.result").first
    expect(first).to_have_attribute("data-id", str(uploaded_id))
    expect(first.locator(".score")).to_have_text("1.000")
    expect(page.locator("#query-preview")).to_be_visible()
    upload_url = page.url

    target = page.locator("#results a.result").nth(1)
    target_id = int(target.get_attribute("data-id"))
    target.click()  # more like this
    expect(page).to_have_url(re.compile(rf"\?id={target_id}$"))
    expect(page.locator("#results li")).to_have_count(24)
    assert target_id not in ids_shown(page)
    page.wait_for_function(THUMBNAILS_LOADED, arg=3)

    page.go_back()
    assert page.url == upload_url
    expect(page.locator("#results a.result").first).to_have_attribute("data-id", str(uploaded_id))
    page.go_back()
    expect(page.locator("#q")).to_have_value("a dog on a beach")
    expect(page.locator("#results li")).to_have_count(24)
    assert ids_shown(page) == text_ids
    assert page.problems == []


def test_shared_link_errors_and_empty_states(page):
    page.goto("/?id=3")  # a shared link runs its query
    expect(page.locator("#results li")).to_have_count(24)
    page.goto("/?id=99999")
    expect(page.locator("#status")).to_have_class("error")
    expect(page.locator("#status")).to_contain_text("unknown image id 99999")
    expect(page.locator("#query-preview")).to_be_hidden()
    page.goto("/?upload=gone")  # uploads are not kept across loads
    expect(page.locator("#status")).to_contain_text("pick it again")
    assert page.problems and all("404" in p for p in page.problems)  # only the unknown id's answers


def test_token_is_asked_for_and_opens_thumbnails(browser, make_app):
    with serving(make_app(token="browser-token-123")) as url:
        context = browser.new_context(base_url=url)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto("/?q=a+lake")
        expect(page.locator("#token-form")).to_be_visible()
        expect(page.locator("#status")).to_contain_text("needs a token")
        page.fill("#token", "browser-token-123")
        page.press("#token", "Enter")
        expect(page.locator("#token-form")).to_be_hidden()
        expect(page.locator("#results li")).to_have_count(24)
        page.wait_for_function(THUMBNAILS_LOADED, arg=3)  # <img> requests carry the token cookie
        page.wait_for_load_state("networkidle")
        context.close()


DISPATCH_FILE = """async ([kind, b64, name]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: 'image/png'}));
    const event = kind === 'drop'
        ? new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true})
        : new ClipboardEvent('paste', {clipboardData: transfer, bubbles: true, cancelable: true});
    document.dispatchEvent(event);
}"""


@pytest.mark.parametrize("kind", ["drop", "paste"])
def test_drop_and_paste_search_by_image(page, kind, photo_paths, photo_root, ids_by_path):
    photo = next(p for p in photo_paths if p.suffix == ".png")
    page.goto("/")
    page.evaluate(DISPATCH_FILE, [kind, b64(photo), photo.name])
    first = page.locator("#results a.result").first
    expect(first).to_have_attribute("data-id", str(ids_by_path[photo.relative_to(photo_root).as_posix()]))
    expect(page.locator("#preview-text")).to_have_text(f"Photos like {photo.name}")
    assert page.problems == []
