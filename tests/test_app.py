"""The app: its session logic on a trained tiny checkpoint, and the Gradio app driven in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from depthlm_hf.app.session import AppSession
from depthlm_hf.testing import flat_image

pytestmark = pytest.mark.usefixtures("one_thread")

CAMERA = "100 100 56 42"  # fx fy cx cy of the 112x84 images `trained_tiny_dir` was taught on
SCREENSHOT_ENV = "DEPTHLM_APP_SCREENSHOTS"
"""Set to a folder (docs/img) to keep the browser test's screenshots: app.png after a click, app_cloud.png after
the point cloud."""


@pytest.fixture(scope="module")
def session(trained_tiny_dir) -> AppSession:
    return AppSession(trained_tiny_dir, device="cpu")


def test_answer_of_a_clicked_pixel_and_of_a_border_pixel(session):
    image = flat_image(140)
    answer = session.answer(image, 56, 42, CAMERA)
    assert (answer.value, answer.reason) == (4.75, None) and 0.5 < answer.confidence <= 1
    assert answer.message() == f"pixel (56, 42): 4.75 m, confidence {answer.confidence:.2f}"
    assert answer.model_view.size == (1120, 840)  # focal 100 -> 1000 px: what the model saw, arrow drawn
    marked = np.asarray(answer.marked)
    assert marked.shape == (84, 112, 3) and (marked[42, 51:57] == [255, 0, 0]).all()  # the shaft left of the tip
    assert (np.asarray(image) == 140).all()  # the input is not drawn on
    edge = session.answer(image, 0, 0, CAMERA)
    assert edge.value is None and edge.model_view is None
    assert edge.message() == "pixel (0, 0): no answer (too near the border for its arrow marker (size 5))"
    with pytest.raises(ValueError, match="`intrinsics` or `fov`"):
        session.answer(image, 5, 5, CAMERA, fov=60.0)


def test_point_cloud_files_and_depth_map(session):
    from plyfile import PlyData

    pytest.importorskip("trimesh")  # the `app` extra (in `dev`, so CI runs this)
    cloud, glb, ply, depth = session.cloud(flat_image(140), 12, fov=58.0)
    assert cloud.grid_shape == (3, 4) and np.allclose(cloud.distance[cloud.valid], 4.75)
    assert len(PlyData.read(str(ply))["vertex"]) == int(cloud.valid.sum()) > 0
    assert glb.read_bytes()[:4] == b"glTF" and depth.size == (112, 84)


# ---------------------------------------------------------------------------------------------- browser
def _chromium():
    binary, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (CI installs them)")
    pytest.importorskip("gradio")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1500"):  # fmt: skip
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={Path(os.environ.get('TMPDIR', '/tmp')) / f'chromium-{os.getpid()}'}")
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(session):
    pytest.importorskip("gradio")  # the `app` extra (in `dev`, so CI runs the browser test)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from depthlm_hf.app import build_app

    app, port = build_app(session), _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


def test_app_in_a_real_browser(served_app, tmp_path):
    """Upload, give the camera, click the image centre, read metres and confidence, ask for a point cloud."""
    browser = _chromium()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def field(elem_id: str):
        return browser.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input")

    try:
        browser.get(served_app)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#image input[type=file]"))
        flat_image(140).save(tmp_path / "grey.png")
        browser.find_element(By.CSS_SELECTOR, "#image input[type=file]").send_keys(str(tmp_path / "grey.png"))
        field("intrinsics").send_keys(CAMERA)
        view = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#view img"))
        wait.until(lambda b: view.get_attribute("naturalWidth") not in (None, "0"))
        ActionChains(browser).move_to_element(view).click().perform()
        wait.until(lambda b: " m, confidence " in field("answer").get_attribute("value"))
        match = re.fullmatch(
            r"pixel \((\d+), (\d+)\): ([\d.]+) m, confidence ([\d.]+)", field("answer").get_attribute("value")
        )
        assert match is not None and float(match[3]) == 4.75 and 0.5 < float(match[4]) <= 1
        assert abs(int(match[1]) - 56) <= 2 and abs(int(match[2]) - 42) <= 2  # the centre of the 112x84 image
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#model_view img"))
        if os.environ.get(SCREENSHOT_ENV):
            browser.save_screenshot(str(Path(os.environ[SCREENSHOT_ENV]) / "app.png"))
        num_points = field("num_points")
        num_points.clear()
        num_points.send_keys("12")
        browser.find_element(By.CSS_SELECTOR, "#cloud_button").click()
        wait.until(lambda b: "grid points answered" in field("cloud_status").get_attribute("value"))
        assert field("cloud_status").get_attribute("value") == "12 of 12 grid points answered"
        wait.until(
            lambda b: (
                b.find_elements(By.CSS_SELECTOR, "#depth img") and b.find_elements(By.CSS_SELECTOR, "#cloud canvas")
            )
        )
        if os.environ.get(SCREENSHOT_ENV):
            browser.execute_script("document.querySelector('#cloud').scrollIntoView()")
            browser.save_screenshot(str(Path(os.environ[SCREENSHOT_ENV]) / "app_cloud.png"))
    finally:
        browser.quit()


def test_demo_checkpoint_is_reused_or_trained_once(tmp_path, monkeypatch):
    from depthlm_hf.app import session as session_module

    calls = []
    monkeypatch.setattr(session_module.subprocess, "run", lambda command, check: calls.append(command))
    model = session_module.demo_checkpoint(tmp_path / "demo", fast=True)
    assert model == tmp_path / "demo" / "model"
    (command,) = calls
    assert command[1:] == ["-m", "depthlm_hf.cli", "demo", "--output_dir", str(tmp_path / "demo"), "--fast", "true"]
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    monkeypatch.setenv(session_module.DEMO_DIR_ENV, str(tmp_path / "demo"))
    assert session_module.demo_checkpoint() == model and len(calls) == 1  # an existing demo output is served


def test_app_command_serves_the_given_model(monkeypatch, tmp_path):
    pytest.importorskip("gradio")
    import depthlm_hf.app as app_module
    from depthlm_hf.scripts import app as app_script

    launched = {}

    class FakeApp:
        def launch(self, **kwargs):
            launched.update(kwargs)

    monkeypatch.setattr(app_module, "build_app", lambda model, device=None: launched.update(model=model) or FakeApp())
    app_script.main(["--model", str(tmp_path), "--port", "7999"])
    assert launched == {"model": str(tmp_path), "server_name": "127.0.0.1", "server_port": 7999, "share": False}
