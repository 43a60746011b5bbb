"""``i2i translate``: images (files, folders, globs) and videos, with a trained checkpoint or the shipped model."""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from i2i_core.checkpoint import select_checkpoint
from i2i_core.cli.options import PICK, ByteSize
from i2i_core.directions import DIRECTIONS
from i2i_core.errors import I2IError
from i2i_core.images import max_pixels
from i2i_core.infer.translate import (
    ImageInputs,
    Translator,
    check_out_dir,
    expand_inputs,
    load_translator,
    plan_outputs,
)
from i2i_core.infer.video import (
    DEFAULT_STATS_WINDOW,
    check_video_output,
    find_videos,
    has_instance_norms,
    is_video,
    translate_video,
)
from i2i_core.precision import resolve_device, resolve_precision
from i2i_core.pretrained import default_checkpoint

#: What to do about outputs that exist already.
OVERWRITE_REMEDY = "use --overwrite to replace them, or another output folder (-o)"


@click.command("translate")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-c",
    "--checkpoint",
    help="Run folder, checkpoint folder, generator .safetensors or builtin:NAME (default: the shipped model).",
)
@PICK
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(),
    help="Output folder; or, for one video, the output video file (e.g. out.mp4).",
)
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["png", "jpg", "webp"]), help="Output format (default: the input's)."
)
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--tile", type=click.IntRange(min=16), help="Translate in tiles of this many pixels a side.")
@click.option("--overlap", type=click.IntRange(min=0), default=32, show_default=True, help="Tile overlap in pixels.")
@click.option(
    "--max-memory",
    type=ByteSize(),
    help="Tile automatically when a full-image pass needs more, e.g. 2GB (default: min(1GB, 1/4 of free RAM)).",
)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Images of the same size (or video frames) translated together.",
)
@click.option(
    "--stats-window",
    type=click.IntRange(min=1),
    default=None,
    help="Video: instance-norm statistics pooled over this many frames (1 = per frame). Default: 8 for a "
    "generator with instance norm, else 1.",
)
@click.option(
    "--smooth",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Video: blend each output frame with the previous one by this much (0 = off).",
)
@click.option("--overwrite", is_flag=True, help="Replace output files that exist already (never an input).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when the output is a terminal).")
def translate_command(
    inputs: tuple[str, ...],
    checkpoint: str | None,
    pick: str | None,
    out_dir: str,
    direction: str,
    fmt: str | None,
    quality: int,
    tile: int | None,
    overlap: int,
    max_memory: int | None,
    precision: str,
    device: str,
    batch_size: int,
    stats_window: int | None,
    smooth: float,
    overwrite: bool,
    progress: bool | None,
) -> None:
    """Translate INPUTS (image and video files, folders, globs) at full resolution into OUT_DIR, keeping their
    names (and their sub-paths in folders); refuse to replace inputs, or existing outputs without --overwrite.

    Videos keep their frame timing and audio. Without -c the shipped model is used. Images over I2I_MAX_PIXELS
    pixels (an environment variable; default 89478485) are refused as possible decompression bombs."""
    max_pixels()  # refuses a bad I2I_MAX_PIXELS once, not once per image
    torch_device = resolve_device(device, key="--device")
    precision = resolve_precision(precision, torch_device, key="--precision")
    videos, images = _split_inputs(inputs, Path(out_dir))
    video_outputs = plan_video_outputs(videos, Path(out_dir), overwrite)
    if images.files:  # refuses a plan that would lose data, before work
        plan_outputs(images, out_dir, fmt, overwrite=overwrite, remedy=OVERWRITE_REMEDY)
    if checkpoint is None:
        checkpoint = default_checkpoint()
        click.echo(f"No checkpoint given (-c): using the shipped model {checkpoint}", err=True)
    translator = load_translator(
        select_checkpoint(checkpoint, pick), direction, torch_device, precision, tile, overlap, max_memory
    )
    show = sys.stderr.isatty() if progress is None else progress
    failed = _translate_images(translator, images, Path(out_dir), fmt, quality, batch_size, overwrite, show)
    if stats_window is None:  # no warning, and no refusal of tiled videos, for generators without instance norm
        stats_window = DEFAULT_STATS_WINDOW if has_instance_norms(translator.compute.module) else 1
    for source, output in video_outputs.items():
        try:
            _translate_one_video(translator, source, output, stats_window, smooth, batch_size, overwrite, show)
        except I2IError as exc:
            failed.append(str(exc))
            click.echo(f"Skipped: {exc}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


def _split_inputs(inputs: tuple[str, ...], out: Path) -> tuple[VideoInputs, ImageInputs]:
    """The videos among ``inputs`` (files, found in folders, glob matches) and the images."""
    videos = VideoInputs({}, [])
    others = []
    for item in inputs:
        path = Path(item)
        if path.is_file() and is_video(path):
            videos.files.setdefault(path, Path(path.name))
            continue
        if path.is_dir():
            videos.folders.append(path)
            for found in find_videos(path):
                videos.files.setdefault(found, found.relative_to(path))
        elif not path.exists():
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if is_video(p))
            for found in matches:
                videos.files.setdefault(found, Path(found.name))
            if matches:
                continue
        others.append(item)
    images = expand_inputs(others) if others else ImageInputs({})
    if not videos.files and not images.files:
        raise I2IError(f"no images or videos found in {', '.join(inputs)}")
    if is_video(out) and (images.files or len(videos.files) != 1):
        raise I2IError(f"-o {out} is a video file: give exactly one video to translate into it, or an output folder")
    return videos, images


@dataclass
class VideoInputs:
    """Video files, each with its output's path relative to the output folder, and the folders searched."""

    files: dict[Path, Path]
    folders: list[Path]


def plan_video_outputs(videos: VideoInputs, out: Path, overwrite: bool) -> dict[Path, Path]:
    """Each video's output file (``out`` itself when it is a video file name, else its path inside ``out``),
    refusing before any work what would lose data: two videos into one file, an output inside an input folder,
    an output that is an input, and (without ``overwrite``) an existing output."""
    if is_video(out):
        plan = {source: out for source in videos.files}
    else:
        plan = {source: out / relative for source, relative in videos.files.items()}
        check_out_dir(out, videos.folders)
    seen: dict[Path, Path] = {}
    for source, output in plan.items():
        if output in seen:
            raise I2IError(f"videos {seen[output]} and {source} would be written to the same file {output}")
        seen[output] = source
        check_video_output(source, output, overwrite)
    return plan


def _translate_images(
    translator: Translator,
    images: ImageInputs,
    out_dir: Path,
    fmt: str | None,
    quality: int,
    batch_size: int,
    overwrite: bool,
    show: bool,
) -> list[str]:
    """Translate the images into ``out_dir`` with a progress bar; returns why each skipped one failed."""
    if not images.files:
        return []
    from tqdm.auto import tqdm

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise I2IError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from exc
    failed = []
    outputs = translator.translate_files(images, out_dir, fmt, quality, batch_size, overwrite=overwrite)
    with tqdm(total=len(images.files), unit="image", disable=not show) as bar:
        for _, out, error in outputs:
            bar.update(1)
            if out is None:
                failed.append(error)
                click.echo(f"Skipped: {error}", err=True)
    click.echo(f"Translated {len(images.files) - len(failed)} of {len(images.files)} image(s) into {out_dir}")
    return failed


def _translate_one_video(
    translator: Translator,
    source: Path,
    output: Path,
    window: int,
    smooth: float,
    batch_size: int,
    overwrite: bool,
    show: bool,
) -> None:
    """Translate one video with a progress bar in frames/s, then print its summary (flicker included)."""
    from tqdm.auto import tqdm

    with tqdm(unit="frame", desc=source.name, disable=not show) as bar:
        result = translate_video(
            translator,
            source,
            output,
            window=window,
            smooth=smooth,
            batch_size=batch_size,
            overwrite=overwrite,
            progress=bar.update,
        )
    click.echo(result.summary())
