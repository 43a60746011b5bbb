"""Translating videos with PyAV: frames decoded, translated in batches and encoded again, with the frame timing
kept and the audio copied unchanged.

Instance normalisation computes its statistics per image, so per frame a video's colours jump whenever its
content changes a little: the flicker of frame-by-frame CycleGAN video. With ``window`` > 1 every instance-norm
layer pools its statistics over the current frame and the ``window - 1`` frames before it (as tiling shares them
over tiles). ``smooth`` blends each output frame with the previous one (a moving average over time: less
flicker, and moving edges trail by as much). The flicker score of a video is how much its output changes from
frame to frame against how much its input does, once the camera's motion between the frames (one whole-pixel
shift, found by phase correlation) is taken out: 1 = the output is as steady as its input.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import nn

from i2i_core.errors import I2IError
from i2i_core.images import uint8_to_float
from i2i_core.infer.tiling import is_per_image_norm, swap_instance_norms
from i2i_core.infer.translate import Translator, move_into_place

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi")
#: Encoders tried in order when the input's own codec has none.
ENCODERS = ("libx264", "libvpx-vp9", "mpeg4")
#: Encoder options by codec: visually lossless quality for x264.
ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"}}


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a video file suffix."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_videos(folder: str | os.PathLike) -> list[Path]:
    """Video files under ``folder`` (recursive), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_video(p) and not p.name.startswith("."))


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


class TemporalSmoother:
    """Blend each output frame with the previous blended one by ``strength``: an exponential moving average over
    time, which damps what changes from frame to frame (and trails moving edges by as much)."""

    def __init__(self, strength: float) -> None:
        if not 0 <= strength < 1:
            raise I2IError(f"--smooth must be in [0, 1), got {strength}")
        self.strength = strength
        self.previous: torch.Tensor | None = None

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) outputs of consecutive frames -> the smoothed outputs."""
        if self.strength == 0:
            return y
        smoothed = []
        for frame in y:
            if self.previous is not None:
                frame = (1 - self.strength) * frame + self.strength * self.previous
            self.previous = frame
            smoothed.append(frame)
        return torch.stack(smoothed)


def camera_shift(previous: torch.Tensor, current: torch.Tensor) -> tuple[int, int]:
    """How far the picture moved between two frames, as one whole-pixel shift ``(dy, dx)``: ``current[y, x]`` shows
    what ``previous[y + dy, x + dx]`` showed (a camera panning right gives ``dx > 0``). Found by phase correlation
    of the frames' luminance, within a quarter of the frame each way. (3, H, W) twice -> (dy, dx).

    Example:
        >>> scene = torch.rand(3, 40, 60)
        >>> camera_shift(scene[:, 5:37, 10:58], scene[:, 7:39, 7:55])
        (2, -3)
    """
    a, b = previous.float().mean(0), current.float().mean(0)
    a, b = a - a.mean(), b - b.mean()
    cross = torch.fft.rfft2(a) * torch.fft.rfft2(b).conj()
    correlation = torch.fft.irfft2(cross / (cross.abs() + 1e-12), s=a.shape)
    height, width = a.shape
    dy = torch.fft.fftfreq(height, 1 / height).round().long()
    dx = torch.fft.fftfreq(width, 1 / width).round().long()
    within = (dy.abs() <= height // 4)[:, None] & (dx.abs() <= width // 4)[None, :]
    peak = int(torch.where(within, correlation, -torch.inf).argmax())
    return int(dy[peak // width]), int(dx[peak % width])


def moved_change(previous: torch.Tensor, current: torch.Tensor, shift: tuple[int, int]) -> float:
    """Mean absolute change between ``current`` and ``previous`` moved by ``shift`` (see :func:`camera_shift`),
    over the part of the picture both frames show. (C, H, W) twice -> a number."""
    (dy, dx), (height, width) = shift, current.shape[-2:]
    seen = current[..., max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)]
    before = previous[..., max(0, dy) : height + min(0, dy), max(0, dx) : width + min(0, dx)]
    return (seen - before).abs().mean().item()


@dataclass
class FlickerMeter:
    """Frame-to-frame change of the inputs and the outputs, summed over frame pairs: as it is
    (``input_change``, ``output_change``) and once the camera's motion is taken out (``input_moved_change``,
    ``output_moved_change``: each frame against the previous one moved by the input's :func:`camera_shift`)."""

    input_change: float = 0.0
    output_change: float = 0.0
    input_moved_change: float = 0.0
    output_moved_change: float = 0.0
    pairs: int = 0
    last: tuple[torch.Tensor, torch.Tensor] | None = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Count (N, 3, H, W) consecutive inputs and outputs."""
        for xi, yi in zip(x, y, strict=True):
            if self.last is not None:
                shift = camera_shift(self.last[0], xi)
                self.input_change += (xi - self.last[0]).abs().mean().item()
                self.output_change += (yi - self.last[1]).abs().mean().item()
                self.input_moved_change += moved_change(self.last[0], xi, shift)
                self.output_moved_change += moved_change(self.last[1], yi, shift)
                self.pairs += 1
            self.last = (xi, yi)

    @property
    def score(self) -> float | None:
        """The flicker: the outputs' change over the inputs' once the camera's motion is taken out (1: the output
        is as steady as its input; a model that redraws lines or colours differently from frame to frame scores
        more). None for a still video."""
        return self.output_moved_change / self.input_moved_change if self.input_moved_change > 0 else None

    @property
    def change_ratio(self) -> float | None:
        """The outputs' frame-to-frame change over the inputs', motion included: below 1 for an output with less
        contrast than its input (a blur), above for one with more (dark outlines), however steady. None for a
        still video."""
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
    #: The output's frame-to-frame change over the input's once the camera's motion is taken out
    #: (:attr:`FlickerMeter.score`); None for a still video.
    flicker: float | None
    #: Summed frame-to-frame changes of input and output, motion included (:attr:`FlickerMeter.change_ratio`).
    input_change: float
    output_change: float
    lost_frames: int = 0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        flicker = "n/a (a still video)" if self.flicker is None else f"{self.flicker:.3f}"
        audio = f", {self.audio_streams} audio stream(s) copied" if self.audio_streams else ", no audio"
        lost = f" ({self.lost_frames} more could not be read)" if self.lost_frames else ""
        pairs = max(1, self.frames - 1)
        ratio = f", {self.output_change / self.input_change:.2f}x" if self.input_change > 0 else ""
        return (
            f"{self.source} -> {self.output}: {self.frames} frames{lost} at {float(self.rate or 0):g} fps{audio}; "
            f"{self.frames_per_second:.1f} frames/s; flicker {flicker} (camera motion taken out; frame change: "
            f"input {self.input_change / pairs:.4f}, output {self.output_change / pairs:.4f}{ratio})"
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

    Frames keep their timestamps (so the frame rate and time base are kept; a frame without one gets the next
    after its predecessor's); they are encoded with the input's codec where PyAV has its encoder and the output
    container takes it, else H.264, VP9 or MPEG-4. Frames go through the generator ``batch_size`` at a time, no
    more than the translator's memory budget holds; frames too large for one pass are tiled (one at a time,
    which ``window`` > 1 cannot share statistics across: it is refused). An audio stream the output container
    cannot hold is left out with a warning. A video that ends before the frame count its container gives (a
    truncated or damaged file) keeps its readable frames, with a warning saying how many were lost. The output is
    written to a temporary file and renamed, so a failure leaves no half-written video. ``progress(n)`` is called
    with each batch's frame count.

    Example:
        >>> t = load_translator("builtin:photo2cartoon")  # doctest: +SKIP
        >>> translate_video(t, "clip.mp4", "cartoon.mp4", window=8).flicker  # doctest: +SKIP
        1.04
    """
    import av

    source, output = Path(source), Path(output)
    if window < 1:
        raise I2IError(f"--stats-window must be at least 1 frame, got {window}")
    check_video_output(source, output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.{uuid.uuid4().hex[:12]}.partial{output.suffix}")
    started = time.perf_counter()
    try:
        with _open_input(av, source) as inp, av.open(str(partial), "w") as out:
            result = _Transcoder(av, translator, inp, out, source, window, smooth, batch_size, progress).run()
        move_into_place(partial, output, overwrite)  # never replaces a file that appeared meanwhile
    except av.FFmpegError as exc:
        raise I2IError(f"{source} -> {output}: cannot translate the video: {exc}") from exc
    except I2IError as exc:
        raise I2IError(exc if str(exc).startswith(str(source)) else f"{source}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return VideoResult(source=source, output=output, **result, seconds=time.perf_counter() - started)


def check_video_output(source: Path, output: Path, overwrite: bool) -> None:
    """Refuse an output that is the input, a folder, or (without ``overwrite``) an existing file."""
    if output.exists() and output.resolve() == source.resolve():
        raise I2IError(f"output {output} would replace the input video: choose another -o")
    if output.is_dir():
        raise I2IError(f"output {output} is a folder: name a video file, or give the folder as -o for all videos")
    if output.exists() and not overwrite:
        raise I2IError(f"output {output} exists already: use --overwrite to replace it, or another -o")


def _open_input(av, source: Path):
    try:
        return av.open(str(source))
    except (av.FFmpegError, OSError) as exc:
        raise I2IError(f"{source}: not a readable video ({exc})") from None


class _Transcoder:
    """One pass over an input container: audio packets copied as they come, video frames translated in
    batches and encoded with their timestamps."""

    def __init__(self, av, translator, inp, out, source, window, smooth, batch_size, progress) -> None:
        if not inp.streams.video:
            raise I2IError("holds no video stream")
        self.av, self.translator, self.out, self.window, self.progress = av, translator, out, window, progress
        self.inp = inp
        self.video = inp.streams.best("video")
        self.width, self.height = self.video.width, self.video.height
        self.tiled = translator.tile_for(self.height, self.width) is not None
        if self.tiled and window > 1:
            raise I2IError(
                f"frames of {self.width}x{self.height} need tiling within the memory budget, and tiles cannot "
                "share statistics across frames: use --stats-window 1, or a larger --max-memory"
            )
        self.batch = translator.batch_limit(self.height, self.width, batch_size)
        self.encoder = _video_encoder(av, out, self.video)
        self.copies = _audio_copies(out, inp.streams.audio, source)
        self.smoother, self.meter = TemporalSmoother(smooth), FlickerMeter()
        self.frames, self.pending, self.last_pts = 0, [], None
        self.source = source

    def run(self) -> dict:
        with _temporal_norms(self.translator.compute.module, self.window):
            for packet in self.inp.demux(self.video, *[self.inp.streams[i] for i in self.copies]):
                if packet.stream.index in self.copies:
                    if packet.dts is not None:
                        packet.stream = self.copies[packet.stream.index]
                        self.out.mux(packet)
                    continue
                for frame in self._decode(packet):
                    self.pending.append(frame)
                    if len(self.pending) >= self.batch:
                        self.flush()
            self.flush()
        for packet in self.encoder.encode(None):
            self.out.mux(packet)
        if self.frames == 0:
            raise I2IError("its video stream has no frames")
        lost = self._lost_frames()
        return {
            "frames": self.frames,
            "rate": self.video.average_rate,
            "audio_streams": len(self.copies),
            "flicker": self.meter.score,
            "input_change": self.meter.input_change,
            "output_change": self.meter.output_change,
            "lost_frames": lost,
        }

    def _decode(self, packet) -> list:
        """The frames of a video packet; none from one that cannot be decoded (cut off or damaged), which
        :meth:`_lost_frames` counts."""
        try:
            return packet.decode()
        except self.av.InvalidDataError:
            return []

    def _lost_frames(self) -> int:
        """How many frames the container promised but could not be decoded, warned about naming the file."""
        expected, exact = expected_frames(self.inp, self.video)
        lost = expected - self.frames if expected is not None else 0
        if lost <= (0 if exact else 1):  # a count estimated from the duration may be a frame off
            return 0
        about = "" if exact else "about "
        warnings.warn(
            f"{self.source}: {lost} of its {about}{expected} frames could not be read (the file is truncated or "
            f"damaged); the output holds the {self.frames} readable ones",
            stacklevel=4,
        )
        return lost

    def flush(self) -> None:
        if not self.pending:
            return
        x = torch.stack([self._tensor(frame) for frame in self.pending])
        y = self.smoother(self.translator.translate_tensor(x, whole=not self.tiled))
        self.meter.add(x, y)
        for frame, image in zip(self.pending, y, strict=True):
            encoded = self.av.VideoFrame.from_ndarray(_to_uint8(image), format="rgb24")
            encoded.pts, encoded.time_base = self._pts(frame), self.video.time_base
            for packet in self.encoder.encode(encoded.reformat(format=self.encoder.pix_fmt)):
                self.out.mux(packet)
        self.frames += len(self.pending)
        if self.progress is not None:
            self.progress(len(self.pending))
        self.pending.clear()

    def _tensor(self, frame) -> torch.Tensor:
        """The frame as (3, H, W) in [-1, 1], at the stream's size (a frame of another size is scaled to it)."""
        rgb = frame.to_ndarray(format="rgb24", width=self.width, height=self.height)
        return uint8_to_float(torch.from_numpy(rgb).permute(2, 0, 1))

    def _pts(self, frame) -> int:
        """The frame's timestamp; one frame duration after the previous one where it has none or repeats it."""
        pts = frame.pts
        if self.last_pts is not None and (pts is None or pts <= self.last_pts):
            rate = self.video.average_rate or self.video.guessed_rate or 25
            step = frame.duration or max(1, round(1 / (rate * self.video.time_base)))
            pts = self.last_pts + step
        self.last_pts = 0 if pts is None else pts
        return self.last_pts


def expected_frames(container, video) -> tuple[int | None, bool]:
    """The frame count the container gives for ``video`` and whether it is exact (from its index), else the count
    its duration and frame rate imply; ``(None, False)`` when it gives neither."""
    if video.frames:
        return video.frames, True
    rate = video.average_rate or video.guessed_rate
    seconds = _stream_seconds(container, video)
    return (round(seconds * rate), False) if rate and seconds else (None, False)


def _stream_seconds(container, video) -> Fraction | None:
    """The duration of ``video`` in seconds: its own, its DURATION tag (Matroska), or the container's when it
    holds no other stream; None when unknown."""
    if video.duration and video.time_base:
        return video.duration * video.time_base
    tag = video.metadata.get("DURATION", "")
    hours, _, rest = tag.partition(":")
    minutes, _, secs = rest.partition(":")
    with contextlib.suppress(ValueError):
        return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(secs)
    if container.duration and len(container.streams) == 1:
        return Fraction(container.duration, 1_000_000)  # in FFmpeg's AV_TIME_BASE
    return None


def _audio_copies(out, streams, source: Path) -> dict:
    """Output streams copying each audio stream, by input index; one the output container cannot hold is left
    out with a warning that names it."""
    copies = {}
    for stream in streams:
        try:
            copies[stream.index] = out.add_stream_from_template(stream)
        except (ValueError, TypeError) as exc:
            codec = stream.codec_context.name if stream.codec_context else "unknown codec"
            warnings.warn(
                f"{source}: audio stream #{stream.index} ({codec}) left out: the output container cannot hold it "
                f"({exc}); choose an output suffix that can (.mkv holds most)",
                stacklevel=3,
            )
    return copies


def _video_encoder(av, out, video):
    """An output video stream like ``video``: same size, frame rate and time base, with the first encoder the
    output container takes (the input's codec, then ``ENCODERS``) and a pixel format it can encode."""
    names = [video.codec_context.codec.canonical_name, *ENCODERS]
    supported = out.supported_codecs
    for name in names:
        try:
            codec = av.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        if codec.name not in supported and codec.canonical_name not in supported:
            continue
        formats = [f.name for f in codec.video_formats or []]
        even = video.width % 2 == 0 and video.height % 2 == 0
        preferred = [f for f in (("yuv420p",) if even else ()) + ("yuv444p", "yuv420p") if f in formats]
        if not preferred:
            continue
        stream = out.add_stream(codec.name, rate=video.average_rate or video.guessed_rate or 25)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, preferred[0]
        stream.time_base = video.time_base
        stream.codec_context.time_base = video.time_base
        stream.options = dict(ENCODER_OPTIONS.get(codec.name, {}))
        if codec.name not in ENCODER_OPTIONS and video.bit_rate:
            stream.bit_rate = video.bit_rate
        return stream
    raise I2IError(f"no video encoder for this output container (tried {', '.join(names)})")


def _to_uint8(image: torch.Tensor):
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 numpy array."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


#: ``i2i translate``'s ``--stats-window`` for a generator with instance norm (for one without: 1).
DEFAULT_STATS_WINDOW = 8


def has_instance_norms(net: nn.Module) -> bool:
    """Whether ``net`` has instance-norm layers whose statistics a window over frames can pool."""
    return any(is_per_image_norm(m) for m in net.modules())


@contextlib.contextmanager
def _temporal_norms(net: nn.Module, window: int) -> Iterator[None]:
    """Pool instance-norm statistics over ``window`` frames while the context lasts (nothing for ``window = 1``)."""
    if window == 1:
        yield
        return
    with swap_instance_norms(net, lambda norm: WindowInstanceNorm(norm, window)) as swapped:
        if not swapped:
            warnings.warn("the generator has no instance normalisation: --stats-window changes nothing", stacklevel=3)
        yield
