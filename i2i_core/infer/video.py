"""Translating videos with PyAV: frames decoded, translated in batches and encoded again, with the frame timing
kept and the audio copied unchanged.

Instance normalisation computes its statistics per image, so per frame a video's colours jump whenever its
content changes a little: the flicker of frame-by-frame CycleGAN video. With ``window`` > 1 every instance-norm
layer pools its statistics over the current frame and the ``window - 1`` frames before it (as tiling shares them
over tiles). ``smooth`` blends each frame's change (output minus input) with the previous frame's, which keeps
the input's own motion and damps what the network adds. The flicker score of a video is how much its output
changes from frame to frame against how much its input does (1 = no flicker added).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import nn

from i2i_core.errors import I2IError
from i2i_core.images import uint8_to_float
from i2i_core.infer.tiling import swap_instance_norms
from i2i_core.infer.translate import Translator

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi")
#: Encoders tried in order when the input's own codec has none.
ENCODERS = ("libx264", "mpeg4")
#: Encoder options by codec: visually lossless quality for x264.
ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"}}


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a video file suffix."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_videos(folder: str | os.PathLike) -> list[Path]:
    """Video files under ``folder`` (recursive), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_video(p))


class WindowInstanceNorm(nn.Module):
    """Instance norm whose statistics are pooled over the current frame and the ``window - 1`` frames before it
    (of earlier batches too). Frames of a batch are taken in order. Stands in for an affine-free
    ``nn.InstanceNorm2d``; ``window = 1`` is plain instance norm."""

    def __init__(self, norm: nn.InstanceNorm2d, window: int) -> None:
        super().__init__()
        self.original, self.eps = norm, norm.eps
        self.history: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        squares = var + mean.square()
        means, variances = [], []
        for frame_mean, frame_squares in zip(mean, squares, strict=True):
            self.history.append((frame_mean, frame_squares))
            pooled_mean = torch.stack([m for m, _ in self.history]).mean(0)
            pooled_squares = torch.stack([s for _, s in self.history]).mean(0)
            means.append(pooled_mean)
            variances.append((pooled_squares - pooled_mean.square()).clamp_min(0))
        out = (xf - torch.stack(means)) * torch.rsqrt(torch.stack(variances) + self.eps)
        return out.to(x.dtype)


class ResidualSmoother:
    """Blend each frame's change (output - input) with the previous frame's blended change, by ``strength``."""

    def __init__(self, strength: float) -> None:
        if not 0 <= strength < 1:
            raise I2IError(f"--smooth must be in [0, 1), got {strength}")
        self.strength = strength
        self.previous: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) inputs and outputs of consecutive frames -> the smoothed outputs."""
        if self.strength == 0:
            return y
        smoothed = []
        for xi, yi in zip(x, y, strict=True):
            change = yi - xi
            if self.previous is not None:
                change = (1 - self.strength) * change + self.strength * self.previous
            self.previous = change
            smoothed.append((xi + change).clamp(-1, 1))
        return torch.stack(smoothed)


@dataclass
class FlickerMeter:
    """Mean absolute frame-to-frame change of the inputs and the outputs, summed over frame pairs."""

    input_change: float = 0.0
    output_change: float = 0.0
    pairs: int = 0
    last: tuple[torch.Tensor, torch.Tensor] | None = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Count (N, 3, H, W) consecutive inputs and outputs."""
        for xi, yi in zip(x, y, strict=True):
            if self.last is not None:
                self.input_change += (xi - self.last[0]).abs().mean().item()
                self.output_change += (yi - self.last[1]).abs().mean().item()
                self.pairs += 1
            self.last = (xi, yi)

    @property
    def score(self) -> float | None:
        """Output change over input change (1 = the output moves as much as the input); None for a still video."""
        return self.output_change / self.input_change if self.input_change > 0 else None


@dataclass(frozen=True)
class VideoResult:
    """What translating one video did."""

    source: Path
    output: Path
    frames: int
    rate: Fraction | None
    seconds: float
    audio_streams: int
    flicker: float | None
    input_change: float
    output_change: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        flicker = "n/a (a still video)" if self.flicker is None else f"{self.flicker:.3f}"
        audio = f", {self.audio_streams} audio stream(s) copied" if self.audio_streams else ", no audio"
        return (
            f"{self.source} -> {self.output}: {self.frames} frames at {float(self.rate or 0):g} fps{audio}; "
            f"{self.frames_per_second:.1f} frames/s; flicker {flicker} (frame change: input "
            f"{self.input_change / max(1, self.frames - 1):.4f}, output {self.output_change / max(1, self.frames - 1):.4f})"
        )


def translate_video(
    translator: Translator,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    window: int = 1,
    smooth: float = 0.0,
    batch_size: int = 8,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Translate the first video stream of ``source`` into ``output``, copying every audio stream unchanged.

    Frames keep their timestamps (so the frame rate and time base are kept); they are encoded with the input's
    codec where PyAV has its encoder, else H.264 (or MPEG-4). The output is written to a temporary file and
    renamed, so a failure leaves no half-written video. ``progress(n)`` is called with each batch's frame count.

    Example:
        >>> t = load_translator("builtin:photo2cartoon")  # doctest: +SKIP
        >>> translate_video(t, "clip.mp4", "cartoon.mp4", window=8).flicker  # doctest: +SKIP
        1.04
    """
    import av

    source, output = Path(source), Path(output)
    if window < 1:
        raise I2IError(f"--stats-window must be at least 1 frame, got {window}")
    if output.resolve() == source.resolve():
        raise I2IError(f"output {output} would replace the input video: choose another -o")
    if output.exists() and not overwrite:
        raise I2IError(f"output {output} exists already: use --overwrite to replace it, or another -o")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    started = time.perf_counter()
    try:
        with _open_input(av, source) as inp, av.open(str(partial), "w") as out:
            result = _transcode(av, translator, inp, out, source, output, window, smooth, batch_size, progress)
        os.replace(partial, output)
    except av.FFmpegError as exc:
        raise I2IError(f"{source}: cannot translate the video: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return VideoResult(**result, seconds=time.perf_counter() - started)


def _open_input(av, source: Path):
    try:
        return av.open(str(source))
    except (av.FFmpegError, OSError) as exc:
        raise I2IError(f"{source}: not a readable video ({exc})") from None


def _transcode(av, translator, inp, out, source, output, window, smooth, batch_size, progress) -> dict:
    if not inp.streams.video:
        raise I2IError(f"{source}: holds no video stream")
    video = inp.streams.video[0]
    audio = list(inp.streams.audio)
    encoder = _video_encoder(av, out, video)
    copies = {stream.index: out.add_stream_from_template(stream) for stream in audio}
    smoother, meter = ResidualSmoother(smooth), FlickerMeter()
    frames, pending = 0, []

    def flush() -> None:
        nonlocal frames
        if not pending:
            return
        x = torch.stack(
            [uint8_to_float(torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1)) for f in pending]
        )
        y = smoother(x, translator.translate_tensor(x, whole=True))
        meter.add(x, y)
        for frame, image in zip(pending, y, strict=True):
            encoded = av.VideoFrame.from_ndarray(_to_uint8(image), format="rgb24")
            encoded.pts, encoded.time_base = frame.pts, frame.time_base
            for packet in encoder.encode(encoded.reformat(format=encoder.pix_fmt)):
                out.mux(packet)
        frames += len(pending)
        if progress is not None:
            progress(len(pending))
        pending.clear()

    with _temporal_norms(translator.compute.module, window):
        for packet in inp.demux(video, *audio):
            if packet.stream.index in copies:
                if packet.dts is not None:
                    packet.stream = copies[packet.stream.index]
                    out.mux(packet)
                continue
            for frame in packet.decode():
                pending.append(frame)
                if len(pending) >= batch_size:
                    flush()
        flush()
    for packet in encoder.encode(None):
        out.mux(packet)
    if frames == 0:
        raise I2IError(f"{source}: its video stream has no frames")
    return {
        "source": source,
        "output": output,
        "frames": frames,
        "rate": video.average_rate,
        "audio_streams": len(audio),
        "flicker": meter.score,
        "input_change": meter.input_change,
        "output_change": meter.output_change,
    }


def _video_encoder(av, out, video):
    """An output video stream like ``video``: same size, frame rate and time base; its codec if PyAV can encode it."""
    names = [video.codec_context.name, *ENCODERS]
    for name in names:
        try:
            stream = out.add_stream(name, rate=video.average_rate or video.guessed_rate or 25)
            break
        except (av.FFmpegError, ValueError):
            continue
    else:
        raise I2IError(f"no video encoder available (tried {', '.join(names)})")
    even = video.width % 2 == 0 and video.height % 2 == 0
    stream.width, stream.height = video.width, video.height
    stream.pix_fmt = "yuv420p" if even or stream.codec_context.name == "mpeg4" else "yuv444p"
    stream.time_base = video.time_base
    stream.codec_context.time_base = video.time_base
    stream.options = ENCODER_OPTIONS.get(stream.codec_context.name, {})
    return stream


def _to_uint8(image: torch.Tensor):
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 numpy array."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


@contextlib.contextmanager
def _temporal_norms(net: nn.Module, window: int) -> Iterator[None]:
    """Pool instance-norm statistics over ``window`` frames while the context lasts (nothing for ``window = 1``)."""
    if window == 1:
        yield
        return
    with swap_instance_norms(net, lambda norm: WindowInstanceNorm(norm, window)):
        yield
