"""End to end in Debian's Chromium, driven by Playwright: the page as a person uses it.

One generated library (months, folders, cameras, a HEIC, planted duplicates;
benchmarks/photo_library.py) is indexed with the tiny model and served once for
the module; each test opens a fresh page at 1280x800 or 390x844. Run alone with
``pytest -m browser tests/web``. Playwright never downloads a browser here: it
drives /usr/bin/chromium.
"""

import json
import os
import re
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest
from web_helpers import b64, serving

from benchmarks.photo_library import make_library
from indexer import BuildConfig, build
from search.query.searcher import Searcher
from web import ServeConfig, create_app

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PHOTOS = 130  # more than one browse page (100), so scrolling loads another
# The tiny random model puts most different photos above the default 0.95: only copies count here.
SERVE = {"device": "cpu", "warmup": False, "duplicate_threshold": 0.9999}
TILES = "#results a.result"
THUMBNAILS_LOADED = """n => {
    const images = [...document.querySelectorAll('#results img')].slice(0, n);
    return images.length === n && images.every(i => i.complete && i.naturalWidth > 0);
}"""


class Library(NamedTuple):
    photos: list  # benchmarks.photo_library.Photo records
    root: Path  # the photo folder
    index: Path
    ids: dict  # path -> id in the bundle
    searcher: Searcher


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_config_file, tiny_checkpoint):
    """A generated library, indexed with the tiny model."""
    root = tmp_path_factory.mktemp("library")
    photos = make_library(root / "photos", PHOTOS, long_side=160)
    index = root / "index"
    build(BuildConfig(photos=str(root / "photos"), index=str(index), model=tiny_config_file.stem,
                      model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint), workers=0))
    searcher = Searcher.open(str(index), device="cpu")
    ids = {r.path: r.id for r in searcher.bundle.metadata.all()}
    assert set(ids) == {p.path for p in photos}  # the HEIC among them
    return Library(photos, root / "photos", index, ids, searcher)


@pytest.fixture(scope="module")
def server(library):
    app = create_app(ServeConfig(index=str(library.index), **SERVE), searcher=library.searcher)
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def open_page(browser, url, viewport):
    context = browser.new_context(base_url=url, viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = []  # script errors, CSP violations, failed loads
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    return page


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def page(request, browser, server):
    page = open_page(browser, server, request.param)
    yield page
    page.wait_for_load_state("networkidle")  # let lazy thumbnails finish before the browser hangs up
    page.context.close()


@pytest.fixture
def desktop(browser, server):
    page = open_page(browser, server, DESKTOP)
    yield page
    page.wait_for_load_state("networkidle")
    page.context.close()


def api(server, path):
    with urllib.request.urlopen(server + path) as response:
        return json.load(response)


def ids_shown(page, selector=TILES):
    return [int(i) for i in page.locator(selector).evaluate_all("links => links.map(a => a.dataset.id)")]


def scroll_to_end(page):
    for _ in range(10):
        before = page.locator(TILES).count()
        page.locator("#sentinel").scroll_into_view_if_needed()
        page.wait_for_timeout(400)
        if page.locator(TILES).count() == before and page.locator("#results[aria-busy]").count() == 0:
            return


def test_start_page_browses_the_library_newest_first(page, server):
    browse = api(server, "/api/browse?limit=500&collapse=true")
    page.goto("/")
    expect(page.locator(TILES).first).to_be_visible()
    page.wait_for_function(THUMBNAILS_LOADED, arg=6)
    expect(page.locator("#status")).to_contain_text(f"{browse['total']} photos, newest first")
    months = page.locator("#results h2.month").all_inner_texts()
    assert months[:2] == ["November 2024", "October 2024"]
    first_page = ids_shown(page)
    assert first_page == [r["id"] for r in browse["results"]][:len(first_page)] and len(first_page) < len(browse["results"])
    scroll_to_end(page)  # infinite scroll: the next pages load as the end comes near
    assert ids_shown(page) == [r["id"] for r in browse["results"]]
    assert page.locator("#results h2.month").all_inner_texts()[-1] == "July 2024"

    image = page.locator("#results img").first
    assert re.fullmatch(r"\S+ 1x, \S+ 2x", image.get_attribute("srcset"))  # sharp at any pixel ratio
    boxes = page.locator(".tile").evaluate_all("ts => ts.slice(0, 40).map(t => t.getBoundingClientRect().toJSON())")
    assert all(b["width"] > 20 and b["height"] > 20 for b in boxes)  # every box reserved before its image loads
    rows = {}
    for box in boxes:
        rows.setdefault(round(box["top"]), []).append(box)
    assert max(len(r) for r in rows.values()) >= 3  # at least three photos in a row, on a phone too
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    header = page.locator("header").bounding_box()
    if page.viewport_size == PHONE:
        assert header["height"] < 100 and not page.locator(".hint").is_visible()  # compact, no desktop tips
    assert page.problems == []


def test_search_folds_weak_matches(page, server):
    answer = api(server, "/api/search?q=a+red+circle&k=48&collapse=true")
    weak = answer["total"] - answer["strong_total"]
    page.goto("/")
    page.locator("#q").fill("a red circle")
    page.locator("#q").press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=a\+red\+circle$"))
    status = page.locator("#status")
    if answer["strong_total"]:
        expect(status).to_contain_text(re.compile(rf"^{answer['strong_total']} good match"))
    else:
        expect(status).to_contain_text("No close matches")
    assert " of " not in status.inner_text()
    fold = page.locator("button.fold")
    assert weak > 0  # the generated library holds photos far from any text
    expect(fold).to_have_text(f"Show {weak} weaker match{'es' if weak > 1 else ''}")
    strong_ids = [r["id"] for r in answer["results"] if r["score"] >= answer["weak_below"]]
    assert ids_shown(page, f"{TILES}:visible") == strong_ids[:48]
    assert not re.search(r"-\d", page.locator("#results").inner_text())  # no raw scores in the grid
    fold.click()
    expect(page.locator("#results h2", has_text="Weaker matches")).to_be_visible()
    scroll_to_end(page)
    tiles, offset = [], 0  # pages count photos; copies collapse into their tile
    while offset < answer["total"]:
        results = api(server, f"/api/search?q=a+red+circle&k=48&offset={offset}&collapse=true")["results"]
        tiles += [r["id"] for r in results]
        offset += sum(1 + len(r.get("duplicates", [])) for r in results)
    assert ids_shown(page, f"{TILES}:visible") == tiles
    assert page.problems == []


def test_viewer_keys_back_button_and_info_panel(page, server):
    page.goto("/")
    expect(page.locator(TILES).nth(30)).to_be_attached()
    page.mouse.wheel(0, 300)
    order = ids_shown(page)
    target = page.locator(TILES).nth(20)
    target.scroll_into_view_if_needed()
    scroll = page.evaluate("scrollY")
    assert scroll > 100
    target.click()
    viewer = page.locator(".pswp")
    expect(page.locator(".pswp[data-opened]")).to_be_visible()  # open, and taking keys
    expect(page).to_have_url(re.compile(rf"[?&]photo={order[20]}$"))
    expect(page.locator(".pswp__img").first).to_be_visible()
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(rf"[?&]photo={order[21]}$"))
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(rf"[?&]photo={order[19]}$"))

    info = page.locator(".pswp__info")
    if page.viewport_size == PHONE:
        expect(info).to_be_hidden()  # a phone shows the photo first; "i" opens the details
        page.keyboard.press("i")
    expect(info).to_be_visible()
    photo = api(server, f"/api/photos/{order[19]}")
    field = lambda name: info.locator(f'[data-field="{name}"]')
    expect(field("name")).to_have_text(photo["name"])
    expect(field("folder")).to_have_text(photo["folder"])
    expect(field("camera")).to_have_text(photo["camera"] or "unknown")
    expect(field("pixels")).to_have_text(f"{photo['width']} × {photo['height']} pixels")
    expect(field("file")).to_contain_text(re.compile(r"\d+(\.\d)? KB"))
    expect(field("taken")).to_contain_text("2024")
    expect(field("score")).to_be_hidden()  # browsing has no score
    assert field("download").get_attribute("href").endswith(photo["download_url"].lstrip("/"))

    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/$"))
    assert abs(page.evaluate("scrollY") - scroll) < 2  # back where the person was

    page.locator(TILES).nth(2).click()
    expect(viewer).to_be_visible()
    page.go_back()  # the back button closes the viewer, not the page
    expect(viewer).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/$"))
    assert ids_shown(page)[:10] == order[:10]
    assert page.problems == []


def test_shared_photo_link_opens_it_and_more_like_this_names_it(desktop, server, library):
    photos, ids = library.photos, library.ids
    oldest = ids[photos[-6].path]  # not on the first browse page
    page = desktop
    page.goto(f"/?photo={oldest}")
    info = page.locator(".pswp__info")
    name = api(server, f"/api/photos/{oldest}")["name"]
    expect(info.locator('[data-field="name"]')).to_have_text(name)
    info.get_by_role("button", name="More like this").click()
    expect(page).to_have_url(re.compile(rf"\?id={oldest}$"))
    expect(page.locator(".pswp")).to_be_hidden()
    expect(page.locator("#preview-text")).to_have_text(f"Photos like {name}")
    expect(page.locator("#status")).not_to_contain_text(f"photo {oldest}")
    assert oldest not in ids_shown(page)

    page.locator(TILES).first.click()
    folder = api(server, f"/api/photos/{ids_shown(page)[0]}")["folder"]
    info.get_by_role("button", name="Show in folder").click()
    expect(page).to_have_url(re.compile(rf"\?folder={re.escape(folder.replace(' ', '+'))}$"))
    expect(page.locator("#filters select[name=folder]")).to_have_value(folder)
    expect(page.locator(TILES).first).to_be_visible()
    in_folder = {ids[p.path] for p in photos if p.path.startswith(folder + "/")}
    assert set(ids_shown(page)) <= in_folder
    assert page.problems == []


def test_filters_alone_and_with_a_query(page, server, library):
    photos, ids = library.photos, library.ids
    camera = "Canon EOS R6"
    page.goto("/")
    if page.viewport_size == PHONE:
        page.locator("#filters summary").click()  # folded on a phone
    page.locator("select[name=camera] >> option", has_text=camera).first.wait_for(state="attached")
    page.select_option("select[name=camera]", camera)
    expect(page).to_have_url(re.compile(r"\?camera=Canon\+EOS\+R6$"))
    expect(page.locator(TILES).first).to_be_visible()
    assert set(ids_shown(page)) <= {ids[p.path] for p in photos if p.camera == camera}
    expect(page.locator("#filters summary")).to_have_text("Filters (1)")

    page.select_option("select[name=camera]", "")
    page.select_option("select[name=type]", "png")
    expect(page).to_have_url(re.compile(r"\?type=png$"))
    expect(page.locator(TILES).first).to_be_visible()
    assert set(ids_shown(page)) <= {ids[p.path] for p in photos if p.path.endswith(".png")}

    page.select_option("select[name=type]", "")
    page.select_option("select[name=folder]", "Trips")
    expect(page).to_have_url(re.compile(r"\?folder=Trips$"))
    expect(page.locator(TILES).first).to_be_visible()
    assert set(ids_shown(page)) <= {ids[p.path] for p in photos if p.path.startswith("Trips/")}

    page.select_option("select[name=folder]", "")
    page.fill("input[name=after]", "2024-10-01")
    page.fill("input[name=before]", "2024-10-31")
    page.locator("input[name=before]").dispatch_event("change")
    expect(page).to_have_url(re.compile(r"\?after=2024-10-01&before=2024-10-31$"))
    expect(page.locator("#results h2.month")).to_have_text(["October 2024"])
    october = {ids[p.path] for p in photos if (p.taken.year, p.taken.month) == (2024, 10)}
    scroll_to_end(page)
    assert set(ids_shown(page)) <= october and len(ids_shown(page)) >= len(october) - 3  # copies collapse

    page.locator("#q").fill("a blue square")  # the filters stay with a text query
    page.locator("#q").press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=a\+blue\+square&after=2024-10-01&before=2024-10-31$"))
    expect(page.locator(TILES).first).to_be_attached()
    assert set(ids_shown(page)) <= october
    page.goto("/?q=a+blue+square&camera=Google+Pixel+7&folder=Family")
    expect(page.locator(TILES).first).to_be_attached()
    assert set(ids_shown(page)) <= {ids[p.path] for p in photos
                                    if p.camera == "Google Pixel 7" and p.path.startswith("Family/")}
    if page.viewport_size == PHONE:
        page.locator("#filters summary").click()
    page.locator("#clear-filters").click()
    expect(page).to_have_url(re.compile(r"\?q=a\+blue\+square$"))
    assert page.problems == []


def test_duplicates_collapse_into_one_tile_and_open_in_place(desktop, library):
    ids = library.ids
    page = desktop
    original, copy = ids["Camera Roll/IMG_0004.jpg"], ids["Camera Roll/IMG_0004 copy.jpg"]
    page.goto("/?folder=Camera+Roll")
    expect(page.locator(TILES).first).to_be_visible()
    shown = ids_shown(page)
    assert (original in shown) != (copy in shown)  # one tile for the pair
    kept = original if original in shown else copy
    tile = page.locator(".tile", has=page.locator(f'a.result[data-id="{kept}"]'))
    badge = tile.locator("button.badge")
    expect(badge).to_have_text("2")
    badge.click()
    expect(badge).to_have_attribute("aria-expanded", "true")
    expect(page.locator(f'.tile.member a.result[data-id="{original + copy - kept}"]')).to_be_visible()
    page.locator(f'a.result[data-id="{original + copy - kept}"]').click()  # the viewer steps through the group
    expect(page.locator(".pswp[data-opened]")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(".pswp")).to_be_hidden()
    badge.click()
    expect(page.locator(".tile.member")).to_have_count(0)

    page.locator("#duplicates-link").click()
    expect(page).to_have_url(re.compile(r"\?view=duplicates$"))
    groups = page.locator(".dup-group")
    expect(groups.first).to_be_visible(timeout=30_000)
    assert groups.count() >= 3
    for i in range(groups.count()):
        expect(groups.nth(i).locator(".dup.keep")).to_have_count(1)
    expect(page.locator(".dup .name", has_text="IMG_0004 copy.jpg")).to_be_visible()
    assert page.problems == []


def test_heic_upload_and_reload(page, library):
    photos, ids = library.photos, library.ids
    heic = next(p for p in photos if p.path.endswith(".heic"))
    root = library[1].parent / "photos"
    page.goto("/")
    # Chromium gives HEIC files no MIME type: the page goes by the extension.
    page.set_input_files("#file", files=[{"name": "IMG_0005.heic", "mimeType": "",
                                          "buffer": (root / heic.path).read_bytes()}])
    expect(page).to_have_url(re.compile(r"\?upload=\w+$"))
    expect(page.locator(TILES).first).to_have_attribute("data-id", str(ids[heic.path]))
    expect(page.locator("#preview-text")).to_have_text("Photos like IMG_0005.heic")
    expect(page.locator("#preview-image")).to_be_hidden()  # no browser shows HEIC: no broken image
    page.reload()
    expect(page.locator("#status")).to_contain_text("pick it again")
    expect(page.locator("#query-preview")).to_be_hidden()
    assert page.locator("img:visible").evaluate_all("is => is.filter(i => !i.complete || !i.naturalWidth).length") == 0
    assert page.problems == []


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
def test_drop_and_paste_search_by_image(desktop, kind, library):
    photo = next(p for p in library.photos if p.path.endswith(".png"))
    desktop.goto("/")
    desktop.evaluate(DISPATCH_FILE, [kind, b64(library.root / photo.path), "scan.png"])
    expect(desktop.locator(TILES).first).to_have_attribute("data-id", str(library.ids[photo.path]))
    expect(desktop.locator("#preview-text")).to_have_text("Photos like scan.png")
    assert desktop.problems == []


def test_shared_link_errors(desktop):
    desktop.goto("/?id=99999")
    expect(desktop.locator("#status")).to_have_class("error")
    expect(desktop.locator("#status")).to_contain_text("99999")
    expect(desktop.locator("#query-preview")).to_be_hidden()
    desktop.goto("/?photo=99999")
    expect(desktop.locator("#status")).to_have_class("error")
    expect(desktop.locator(".pswp")).to_be_hidden()
    expect(desktop).to_have_url(re.compile(r"/$"))
    assert desktop.problems and all("404" in p for p in desktop.problems)  # only the unknown ids' answers


def test_token_is_asked_for_and_opens_thumbnails(browser, library):
    app = create_app(ServeConfig(index=str(library.index), token="browser-token-123", **SERVE),
                     searcher=library.searcher)
    with serving(app) as url:
        page = open_page(browser, url, DESKTOP)
        page.goto("/?q=a+lake")
        expect(page.locator("#token-form")).to_be_visible()
        expect(page.locator("#status")).to_contain_text("needs a token")
        page.fill("#token", "browser-token-123")
        page.press("#token", "Enter")
        expect(page.locator("#token-form")).to_be_hidden()
        expect(page.locator(TILES).first).to_be_visible()
        page.wait_for_function(THUMBNAILS_LOADED, arg=1)  # <img> requests carry the token cookie
        page.wait_for_load_state("networkidle")
        page.context.close()
