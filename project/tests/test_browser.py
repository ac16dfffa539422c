"""The review pages in a real browser (headless Chromium + chromedriver, driven by Selenium) against a
live server and the shipped model: what a person does, counted in clicks.

Skipped, with the reason, only when Chromium cannot start (no selenium, no chromium/chromedriver:
``apt-get install chromium chromium-driver``; ``.ci/run`` installs them). On a failure the page is
saved as a screenshot under ``var/browser/``. axe-core (vendored in tests/vendor) checks the pages."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

from hashtags import services
from hashtags.models import ImageAnalysis, Suggestion, SuggestionState
from hashtags.query import tags_for
from project.posts.models import Post
from tests.hashtags import support

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the test then skips, saying so
    webdriver = None

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "browser"
AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
WAIT_S = 120  # the first analysis loads TensorFlow and the shipped model


@pytest.fixture(scope="module")
def chrome():
    """One headless Chromium for the module; skip (with why) only if it cannot start."""
    if webdriver is None:
        pytest.skip("selenium is not installed (pip install -r requirements-dev.txt)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("chromium/chromedriver not found (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
    except Exception as exc:  # any start-up failure of the browser itself
        pytest.skip(f"chromium could not start: {exc}")
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def site(chrome, live_server, settings, hashtags_config):
    """The live demo with uploaded files served, analyses inline with the shipped model."""
    settings.ROOT_URLCONF = "project.tests.browser_urls"
    hashtags_config(EXECUTOR="sync", MODEL_DIR=None, MIN_SCORE=0.0)
    chrome.delete_all_cookies()
    return Browser(chrome, live_server.url)


def screenshots_on_failure(test):
    """Save the page as var/browser/<test>.png when the test fails."""

    @functools.wraps(test)
    def run(*args, site, **kwargs):
        try:
            return test(*args, site=site, **kwargs)
        except BaseException:
            SHOTS.mkdir(parents=True, exist_ok=True)
            site.driver.save_screenshot(str(SHOTS / f"{test.__name__}.png"))
            raise

    return run


class Browser:
    """The driver with the few verbs the tests use; every click a person would make is counted."""

    def __init__(self, driver, base: str):
        self.driver, self.base, self.clicks = driver, base, 0

    def get(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, element) -> None:
        self.clicks += 1
        element.click()

    def wait(self, condition, timeout: float = 10):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(lambda d: condition())

    def keys(self, *keys) -> None:
        ActionChains(self.driver).send_keys(*keys).perform()

    def sign_in(self, path: str, username: str, password: str) -> None:
        self.get(path)
        self.find("input[name=username]").send_keys(username)
        self.find("input[name=password]").send_keys(password)
        self.find("input[name=password]").submit()
        self.wait(lambda: "login" not in self.driver.current_url)

    def axe_violations(self) -> list[dict]:
        """Serious and critical axe-core violations of the page."""
        self.driver.execute_script(AXE.read_text())
        result = self.driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(function (r) { done(r.violations); })"
            ".catch(function (e) { done([{id: 'axe-error', impact: 'critical', help: String(e)}]); });"
        )
        return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                 "nodes": [" ".join(n.get("target", [])) + ": " + n.get("failureSummary", "")[:160]
                           for n in v.get("nodes", [])[:5]]}
                for v in result if v["impact"] in ("serious", "critical")]


def _suggestion_items(site) -> list:
    return site.find_all("#suggestions li.suggestion")


@screenshots_on_failure
def test_demo_upload_then_review_with_clicks_and_keys(site, user, tmp_path):
    photo = tmp_path / "park.jpg"
    photo.write_bytes(support.jpeg_bytes(seed=3))
    site.sign_in("/accounts/login/", "owner", "pw-owner-123")
    site.get("/posts/new/")
    site.find("input[type=file]").send_keys(str(photo))
    site.click(site.find("form[enctype] button[type=submit]"))
    site.wait(lambda: len(_suggestion_items(site)) >= 3, timeout=WAIT_S)
    post = Post.objects.get()
    analysis = ImageAnalysis.objects.get(object_id=str(post.pk))
    assert site.find(".photo img").get_attribute("alt").startswith("Photo by owner")
    ranked = list(analysis.suggestions.order_by("rank"))

    # Accept the best with a click: the card updates in place (no reload: the marker survives).
    site.driver.execute_script("window.__sameDocument = true")
    site.click(site.find(f'[data-suggestion="{ranked[0].hashtag.name}"] button.ok'))
    site.wait(lambda: "accepted" in site.find(f'[data-suggestion="{ranked[0].hashtag.name}"]').get_attribute("class"))
    assert site.driver.execute_script("return window.__sameDocument") is True
    # Reject the second from the keyboard: focus its button, press Enter.
    reject = site.find(f'[data-suggestion="{ranked[1].hashtag.name}"] button.bad')
    reject.send_keys(Keys.ENTER)
    site.wait(lambda: "rejected" in site.find(f'[data-suggestion="{ranked[1].hashtag.name}"]').get_attribute("class"))
    # Edit the third: open its field, type, Enter.
    site.click(site.find(f'[data-suggestion="{ranked[2].hashtag.name}"] [data-edit]'))
    field = site.find(f"#edit-{ranked[2].pk} input[name=tag]")
    field.clear()
    field.send_keys("#puppy", Keys.ENTER)
    site.wait(lambda: site.find_all('[data-suggestion="puppy"]'))
    # Add a tag of one's own, keyboard only.
    site.find("#tags input[name=tag]").send_keys("#sunset", Keys.ENTER)
    site.wait(lambda: "#sunset" in site.find("#tags").text)
    # Correct the caption.
    caption = site.find("#caption-input")
    caption.clear()
    caption.send_keys("a dog running on the grass", Keys.ENTER)
    site.wait(lambda: "Caption corrected" in site.find("#live-status").text)

    states = dict(analysis.suggestions.values_list("pk", "state"))
    assert states[ranked[0].pk] == SuggestionState.ACCEPTED and states[ranked[1].pk] == SuggestionState.REJECTED
    assert states[ranked[2].pk] == SuggestionState.EDITED
    assert {t.name for t in tags_for(post)} == {ranked[0].hashtag.name, "puppy", "sunset"}
    analysis.refresh_from_db()
    assert analysis.corrected_caption == "a dog running on the grass"
    site.get(post.get_absolute_url())
    assert site.find(".photo img").get_attribute("alt") == "Photo by owner: a dog running on the grass"
    assert site.axe_violations() == []


PHOTOS = 10


@screenshots_on_failure
def test_admin_queue_ten_photos_at_most_two_clicks_each(site, make_post, django_user_model):
    """Ten photos with ten suggestions each: three reviewed one by one (toggle + next, next, keys
    only), five with "next" alone, two with "accept top N"; at most two clicks per photo."""
    posts = [make_post(seed=seed) for seed in range(PHOTOS)]
    analyses = [ImageAnalysis.objects.get(object_id=str(p.pk)) for p in posts]
    assert all(a.suggestions.count() == 10 for a in analyses)
    django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    site.sign_in("/admin/login/?next=/admin/", "admin", "pw-admin-123")
    site.clicks = 0

    site.get("/admin/hashtags/")
    site.click(site.find("a[href$='/admin/hashtags/reviewqueueitem/review/']"))
    assert site.find("#rq-pending-images").text == str(PHOTOS)
    assert site.find_all(f"#card-{analyses[0].pk} img")[0].get_attribute("alt")
    SHOTS.mkdir(parents=True, exist_ok=True)
    site.driver.save_screenshot(str(SHOTS / "review_queue.png"))
    violations = site.axe_violations()
    assert violations == [], violations
    per_photo = []

    def card(analysis):
        return site.find(f"#card-{analysis.pk}")

    def decided(analysis):
        """Stored, and the page that replaced the card is loaded."""
        return not analysis.suggestions.filter(state=SuggestionState.PENDING).exists() \
            and not site.find_all(f"#card-{analysis.pk}")

    # Photo 1: one chip toggled off, then "accept the selected, reject the rest, next".
    start = site.clicks
    chips = card(analyses[0]).find_elements("css selector", "[data-chip]")
    site.click(chips[0])
    site.click(card(analyses[0]).find_element("css selector", "[data-next]"))
    site.wait(lambda: decided(analyses[0]))
    per_photo.append(site.clicks - start)
    ranked = list(analyses[0].suggestions.order_by("rank").values_list("state", flat=True))
    assert ranked[:3] == ["rejected", "accepted", "accepted"] and set(ranked[3:]) == {"rejected"}

    # Photos 2-8: the preselected chips are right: one click each.
    for analysis in analyses[1:8]:
        start = site.clicks
        site.wait(lambda a=analysis: site.find_all(f"#card-{a.pk} [data-next]"))
        site.click(card(analysis).find_element("css selector", "[data-next]"))
        site.wait(lambda a=analysis: decided(a))
        per_photo.append(site.clicks - start)
    # ... where photo 8 is redone from the keyboard instead: undo it and use "4", "a" (no click).
    for s in analyses[7].suggestions.all():
        services.reset(s)
    site.get("/admin/hashtags/reviewqueueitem/review/")
    site.wait(lambda: site.find_all(f"#card-{analyses[7].pk}"))
    start = site.clicks
    site.keys("4")
    site.keys("a")
    site.wait(lambda: decided(analyses[7]))
    per_photo[-1] = site.clicks - start
    ranked = list(analyses[7].suggestions.order_by("rank").values_list("state", flat=True))
    assert ranked[:4] == ["accepted"] * 4 and set(ranked[4:]) == {"rejected"}

    # Photos 9-10: select both, "accept top N" (N = 3, the default).
    site.wait(lambda: site.find_all(f"#card-{analyses[9].pk}"))
    start = site.clicks
    for analysis in analyses[8:]:
        site.click(card(analysis).find_element("css selector", "[data-select]"))
    site.click(site.find("#rq-bulk-submit"))
    site.wait(lambda: decided(analyses[8]) and decided(analyses[9]))
    per_photo += [(site.clicks - start) / 2] * 2
    for analysis in analyses[8:]:
        ranked = list(analysis.suggestions.order_by("rank").values_list("state", flat=True))
        assert ranked[:3] == ["accepted"] * 3 and set(ranked[3:]) == {"rejected"}

    site.wait(lambda: site.find_all("#rq-empty"))
    assert Suggestion.objects.filter(state=SuggestionState.PENDING).count() == 0
    assert len(per_photo) == PHOTOS and max(per_photo) <= 2, per_photo
    print(f"clicks per photo: {per_photo}; mean {sum(per_photo) / PHOTOS:.1f}, max {max(per_photo)}")
