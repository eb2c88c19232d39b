"""The Gradio Blocks of the app: upload an image, give its camera, click a pixel, ask for a point cloud.

Layout (element ids in brackets are what the browser test drives):
- left: the image upload [image], the camera as "fx fy cx cy" [intrinsics] or a horizontal field of view
  [fov] (neither: the EXIF focal length), the clickable image [view] (the marker drawn where clicked);
- right: the answer in metres with its confidence [answer], the marked image the model saw [model_view];
- below: grid size [num_points], a button [cloud_button], the cloud (`gr.Model3D`) [cloud], the depth map
  [depth] and the PLY file [ply].
"""

from __future__ import annotations

import os

import gradio as gr
from PIL import Image

from depthlm_hf.app.session import AppSession

INTRO = (
    "# DepthLM: metric depth from a vision-language model\n"
    "Upload an image, give its camera (intrinsics or field of view), then **click a pixel**: the model is asked "
    "*how far is the point under the red arrow?* and answers in metres. **Point cloud** asks a grid of pixels."
)


def build_app(model: str | os.PathLike | AppSession, device: str | None = None) -> gr.Blocks:
    """The app serving `model` (a checkpoint folder, Hub id, or an `AppSession`)."""
    session = model if isinstance(model, AppSession) else AppSession(model, device)

    def on_upload(image: Image.Image | None):
        return image, "Click a pixel of the image.", None

    def on_click(image: Image.Image | None, intrinsics: str, fov: float | None, event: gr.SelectData):
        if image is None:
            raise gr.Error("Upload an image first.")
        x, y = event.index
        try:
            answer = session.answer(image, x, y, intrinsics, fov)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return answer.message(), answer.model_view, answer.marked

    def on_cloud(image: Image.Image | None, intrinsics: str, fov: float | None, num_points: float):
        if image is None:
            raise gr.Error("Upload an image first.")
        try:
            cloud, glb, ply, depth = session.cloud(image, int(num_points), intrinsics, fov)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        status = f"{int(cloud.valid.sum())} of {len(cloud.valid)} grid points answered"
        return None if glb is None else str(glb), depth, str(ply), status

    with gr.Blocks(title="DepthLM") as app:
        gr.Markdown(INTRO)
        gr.Markdown(f"Model: `{session.model_path}`")
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="pil", label="Image", elem_id="image", sources=["upload"])
                with gr.Row():
                    intrinsics = gr.Textbox(label="Intrinsics fx fy cx cy [px]", elem_id="intrinsics")
                    fov = gr.Number(label="or horizontal field of view [deg] (0: EXIF)", value=0, elem_id="fov")
                view = gr.Image(type="pil", label="Click a pixel", interactive=False, elem_id="view")
            with gr.Column():
                answer = gr.Textbox(label="Answer", elem_id="answer", interactive=False)
                model_view = gr.Image(label="What the model saw", interactive=False, elem_id="model_view")
        with gr.Row():
            num_points = gr.Number(label="Grid points", value=400, precision=0, elem_id="num_points")
            cloud_button = gr.Button("Point cloud", variant="primary", elem_id="cloud_button")
            cloud_status = gr.Textbox(label="Cloud", interactive=False, elem_id="cloud_status")
        with gr.Row():
            cloud = gr.Model3D(label="Point cloud", display_mode="point_cloud", elem_id="cloud")
            depth = gr.Image(label="Depth map (z, near = red)", interactive=False, elem_id="depth")
        ply = gr.File(label="point_cloud.ply", elem_id="ply")

        image.change(on_upload, inputs=image, outputs=[view, answer, model_view])
        view.select(on_click, inputs=[image, intrinsics, fov], outputs=[answer, model_view, view])
        cloud_button.click(
            on_cloud, inputs=[image, intrinsics, fov, num_points], outputs=[cloud, depth, ply, cloud_status]
        )
    return app
