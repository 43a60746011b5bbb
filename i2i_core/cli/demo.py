"""``i2i demo``: a local web page (gradio) that translates an uploaded photo with a shipped model, a run folder
or a checkpoint file, tiling big photos as ``i2i translate`` does.

gradio is an optional extra: ``pip install 'i2i[demo]'``.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from i2i_core.checkpoint import select_checkpoint
from i2i_core.directions import DIRECTIONS, check_direction
from i2i_core.errors import I2IError
from i2i_core.host.registry import list_components
from i2i_core.images import BadImageError, load_rgb
from i2i_core.infer.translate import Translator, load_translator
from i2i_core.infer.video import is_video
from i2i_core.pretrained import PREFIX

TITLE = "i2i: image-to-image translation"


def model_choices(given: tuple[str, ...] = ()) -> list[str]:
    """The models the page offers: those ``given`` (``-c``) first, then every shipped one (``builtin:<name>``,
    the default first)."""
    shipped = sorted(list_components("pretrained"), key=lambda c: (not c.metadata.get("default"), c.name))
    return [m for m in given if m] + [PREFIX + c.name for c in shipped]


@functools.lru_cache(maxsize=4)
def cached_translator(model: str, direction: str) -> Translator:
    """The translator of ``model`` (a shipped model, run folder or checkpoint file) for ``direction``, kept."""
    return load_translator(select_checkpoint(model), direction)


def check_request(image_path: str | None, model: str | None, direction: str) -> None:
    """Refuse a request with no upload, no model or an unknown direction, saying what to do."""
    if not image_path:
        raise I2IError("upload or drop a photo first")
    if not model or not model.strip():
        raise I2IError("choose a model: a shipped one, a run folder or a generator .safetensors file")
    check_direction(direction)


def uploaded_file(payload: Any) -> tuple[str | None, str | None]:
    """The server's copy of an upload and the name its visitor gave it, from the page's unprocessed image data
    (a dict with ``path`` and ``orig_name``) or a path; ``(None, None)`` without an upload."""
    if isinstance(payload, str | os.PathLike):
        return os.fspath(payload), Path(payload).name
    path = payload.get("path") if isinstance(payload, dict) else None
    if not path:
        return None, None
    return path, payload.get("orig_name") or Path(path).name


def translate_upload(image_path: str, translator: Translator, out_dir: Path, name: str | None = None) -> Path:
    """Translate the uploaded file at ``image_path`` (called ``name`` by its visitor) into a PNG in ``out_dir``
    (big photos tiled); returns it.

    Raises:
        BadImageError: the upload is not an image ``i2i translate`` takes: the message, the line ``i2i translate``
            gives, names the upload, not the server's copy of it.
    """
    name = name or Path(image_path).name
    if is_video(name):
        raise BadImageError(name, "a video: the demo translates photos; translate videos with `i2i translate`")
    try:
        image = load_rgb(image_path)
        result = translator.translate(image)
    except BadImageError as exc:
        raise BadImageError(name, exc.reason) from None
    except I2IError as exc:  # e.g. an image too small to translate
        raise BadImageError(name, str(exc)) from None
    fd, out = tempfile.mkstemp(prefix=f"{Path(image_path).stem}-i2i-", suffix=".png", dir=out_dir)
    os.close(fd)
    result.save(out)
    return Path(out)


def build_demo(models: list[str], *, typed_models: bool = True) -> Any:
    """The gradio ``Blocks`` page: photo in, model and direction, translated photo out (and as a download).

    With ``typed_models`` a visitor may type any run folder or checkpoint path of this machine; without, only
    ``models`` are offered (for a page others can reach). Requests run one at a time; results are deleted after
    an hour. Uploads reach :func:`translate_upload` as they are (gradio does not decode them first), so a file
    that is not a usable photo gets the line ``i2i translate`` gives, naming it."""
    import gradio as gr

    out_dir = Path(tempfile.mkdtemp(prefix="i2i-demo-"))
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)

    def run(upload: Any, model: str | None, direction: str, progress=gr.Progress()):  # noqa: B008
        image_path, name = uploaded_file(upload)
        try:
            check_request(image_path, model, direction)
            progress(0.1, desc="Loading the model")
            if not typed_models and model not in models:
                raise I2IError(f"model {model!r} is not offered on this page")
            translator = cached_translator(model.strip(), direction)
            progress(0.4, desc="Translating")
            out = str(translate_upload(image_path, translator, out_dir, name))
        except (I2IError, OSError) as exc:  # one line on the page, no traceback in the server's log
            raise gr.Error(str(exc), print_exception=False) from None
        progress(1.0, desc="Done")
        return out, out

    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\nUpload or drop a photo, choose a model and a direction, then **Translate**.")
        with gr.Row():
            with gr.Column():
                source = gr.Image(
                    label="Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"], elem_id="source"
                )
                model = gr.Dropdown(
                    models,
                    value=models[0] if models else None,
                    allow_custom_value=typed_models,
                    label="Model: a shipped one, or type a run folder or a generator .safetensors path",
                    elem_id="model",
                )
                direction = gr.Radio(list(DIRECTIONS), value="AtoB", label="Direction", elem_id="direction")
                button = gr.Button("Translate", variant="primary", elem_id="translate")
            with gr.Column():
                result = gr.Image(label="Result", type="filepath", format="png", interactive=False, elem_id="result")
                download = gr.File(label="Download", elem_id="download")
        button.click(
            run, inputs=[source, model, direction], outputs=[result, download], concurrency_limit=1, preprocess=False
        )
    return demo


@click.command("demo")
@click.option(
    "-c",
    "--checkpoint",
    "checkpoints",
    multiple=True,
    help="A run folder or checkpoint file to offer besides the shipped models (repeatable).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 exposes it).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True)
@click.option("--open/--no-open", "open_browser", default=False, help="Open the page in a browser.")
def demo_command(checkpoints: tuple[str, ...], host: str, port: int, open_browser: bool) -> None:
    """A local web page translating uploaded photos (needs gradio: pip install 'i2i[demo]')."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise I2IError("i2i demo needs gradio: pip install 'i2i[demo]'") from None
    for checkpoint in checkpoints:
        select_checkpoint(checkpoint)  # a missing path fails here, not in the browser
    models = model_choices(tuple(os.fspath(c) for c in checkpoints))
    click.echo(f"i2i demo on http://{host}:{port} (Ctrl+C stops it)")
    local = host in ("127.0.0.1", "localhost", "::1")
    if not local:
        click.echo("Reachable from other machines: only the models listed are offered (no typed paths)", err=True)
    build_demo(models, typed_models=local).launch(
        server_name=host, server_port=port, inbrowser=open_browser, show_error=True
    )
