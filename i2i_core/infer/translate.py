"""Translating images with a trained generator, at full resolution and in bounded memory.

A checkpoint is a run folder (its latest checkpoint), a training checkpoint folder, or a component checkpoint
file (e.g. one written by ``i2i import-weights``).
"""

from __future__ import annotations

import errno
import glob
import io
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from i2i_core.checkpoint import fsync_folder, generator_file, load_component, read_metadata
from i2i_core.compute_copy import ComputeCopy
from i2i_core.directions import check_direction
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.images import IMAGE_EXTENSIONS, BadImageError, find_images, load_rgb, to_image, to_tensor
from i2i_core.infer.tiling import translate_tensor
from i2i_core.precision import autocast, resolve_device, resolve_precision

FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
MIN_SIDE = 16
#: How many files a refusal lists before it says how many more there are.
LISTED = 3
#: Peak working memory of a generator pass, in bytes per pixel per filter of its first layer: measured 15 for
#: ResNet-9 in fp32 (11 in bf16) and 6 for U-Net-256 at 1024x1024 on CPU; used to decide when and how to tile.
BYTES_PER_PIXEL_PER_FILTER = 16
#: Why ``os.link`` fails on file systems without hard links (FAT, some network shares).
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP}


class OutputExistsError(I2IError):
    """An output file that someone else created after the outputs were checked: it is left as it is."""


def generator_checkpoint(path: str | os.PathLike, direction: str = "AtoB") -> Path:
    """The generator file a checkpoint path stands for (see the module docstring)."""
    return generator_file(path, check_direction(direction))


def load_generator(path: str | os.PathLike, direction: str = "AtoB") -> nn.Module:
    """Load the generator of ``direction`` from a checkpoint path; refuse checkpoints of other kinds."""
    file = generator_checkpoint(path, direction)
    kind = read_metadata(file).get("kind")
    if kind != "generator":
        raise CheckpointError(f"{file}: holds a {kind or 'non-i2i'} checkpoint, not a generator")
    return load_component(file)


def default_max_memory() -> int:
    """A safe budget for one full-image pass: a quarter of the available memory, at most 1 GiB."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 4 << 30
    return min(1 << 30, available // 4)


def _first_width(net: nn.Module) -> int:
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.out_channels if conv is not None else 64


@dataclass
class Translator:
    """A generator ready to translate images of any size.

    With ``precision="bf16"`` the images run through a bf16, channels-last copy of ``net`` (``compute``) made
    when the translator is; ``net`` itself is left as it is.

    Example:
        >>> t = load_translator("runs/quickstart")  # doctest: +SKIP
        >>> t.translate("photo.jpg").save("anime.png")  # doctest: +SKIP
    """

    net: nn.Module
    device: torch.device
    precision: str
    tile: int | None = None
    overlap: int = 32
    max_memory: int | None = None
    compute: ComputeCopy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.compute = ComputeCopy.for_precision(self.net, self.precision)

    def tile_for(self, height: int, width: int) -> int | None:
        """The tile side for an image: the explicit one; else none when a full pass fits the memory budget, or
        the largest tile (at most 512, at least 128) whose pass fits it."""
        if self.tile:
            return self.tile
        budget = self._budget()
        if self._pass_bytes(height, width) <= budget:
            return None
        return max(128, min(512, int((budget / self._pass_bytes(1, 1)) ** 0.5)))

    def batch_limit(self, height: int, width: int, batch_size: int) -> int:
        """How many images of this size one generator pass may take: at most ``batch_size``, and no more than
        the memory budget holds (1 when one image only just fits, or is tiled, or is too small)."""
        if self.tile_for(height, width) is not None or min(height, width) < MIN_SIDE:
            return 1
        return max(1, min(batch_size, self._budget() // self._pass_bytes(height, width)))

    def _budget(self) -> int:
        return self.max_memory or default_max_memory()

    def _pass_bytes(self, height: int, width: int) -> int:
        """Peak working memory of a full pass over one image (see ``BYTES_PER_PIXEL_PER_FILTER``)."""
        return height * width * _first_width(self.net) * BYTES_PER_PIXEL_PER_FILTER

    def translate_tensor(self, x: torch.Tensor, *, whole: bool = False) -> torch.Tensor:
        """(3, H, W) or (N, 3, H, W) in [-1, 1] -> the same shape in [-1, 1] (batches of N > 1 are not tiled, nor
        is anything with ``whole``: one pass over each image, whatever the memory budget)."""
        batch = x.unsqueeze(0) if x.ndim == 3 else x
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
        h, w = batch.shape[-2:]
        if min(h, w) < MIN_SIDE:
            raise I2IError(f"image of {w}x{h} pixels is too small: both sides must be at least {MIN_SIDE}")
        y = translate_tensor(
            self.compute.module,
            batch.to(self.device),
            tile=self.tile_for(h, w) if len(batch) == 1 and not whole else None,
            overlap=self.overlap,
            autocast=lambda: autocast(self.precision, self.device),
            prepare=self.compute.prepare,
        )
        y = y.clamp(-1, 1).cpu().contiguous()
        return y[0] if x.ndim == 3 else y

    def translate(self, image: Image.Image | str | os.PathLike | torch.Tensor) -> Image.Image | torch.Tensor:
        """Translate a PIL image, an image file (returns a PIL image) or a tensor (returns a tensor)."""
        if isinstance(image, torch.Tensor):
            return self.translate_tensor(image)
        if not isinstance(image, Image.Image):
            image = load_rgb(image)
        return to_image(self.translate_tensor(to_tensor(image.convert("RGB"))))

    def translate_many(
        self,
        inputs: ImageInputs | Iterable[str | os.PathLike],
        out_dir: str | os.PathLike,
        fmt: str | None = None,
        quality: int = 95,
        batch_size: int = 8,
        *,
        overwrite: bool = False,
    ) -> tuple[list[Path], list[tuple[Path, str]]]:
        """Translate image files into ``out_dir`` (see :meth:`translate_files`).

        Returns (written files, [(failed input, reason)]): a bad file is reported and skipped.
        """
        written, failed = [], []
        for path, out, error in self.translate_files(inputs, out_dir, fmt, quality, batch_size, overwrite=overwrite):
            if out is not None:
                written.append(out)
            else:
                failed.append((path, error))
        return written, failed

    def translate_files(
        self,
        inputs: ImageInputs | Iterable[str | os.PathLike],
        out_dir: str | os.PathLike,
        fmt: str | None = None,
        quality: int = 95,
        batch_size: int = 8,
        *,
        overwrite: bool = False,
    ) -> Iterator[tuple[Path, Path | None, str | None]]:
        """Translate files one by one, yielding (input, output or None, error or None) as each is done.

        The outputs are those of :func:`plan_outputs`, which refuses a plan that would lose data before any
        image is translated. Each output is created only if it still does not exist (unless ``overwrite``): one
        that another program created meanwhile is left as it is, and its input reported as failed. An output
        that cannot be written (a full disk) raises :class:`I2IError` naming it, and leaves no partial file. Consecutive images of the same size that need no tiling run through the generator
        together, up to ``batch_size`` at a time and as many as the memory budget holds (instance norm is per
        image, so the result is the same as one at a time).
        """
        plan = plan_outputs(inputs, out_dir, fmt, overwrite=overwrite)
        pending: list[tuple[Path, torch.Tensor]] = []

        def flush() -> Iterator[tuple[Path, Path | None, str | None]]:
            if pending:
                outputs = self.translate_tensor(torch.stack([x for _, x in pending]))
                for (path, _), y in zip(pending, outputs, strict=True):
                    yield self._output(path, y, plan[path], quality, overwrite)
                pending.clear()

        for path, out in plan.items():
            try:
                x = to_tensor(load_rgb(path))
            except I2IError as exc:
                yield path, None, _failure(path, exc)
                continue
            limit = self.batch_limit(*x.shape[-2:], batch_size)
            if pending and (pending[0][1].shape != x.shape or len(pending) >= limit):
                yield from flush()
            if limit > 1:
                pending.append((path, x))
                continue
            try:
                y = self.translate_tensor(x)
            except I2IError as exc:
                yield path, None, _failure(path, exc)
                continue
            yield self._output(path, y, out, quality, overwrite)
        yield from flush()

    def translate_file(
        self, path: Path, out_dir: Path, fmt: str | None = None, quality: int = 95, *, overwrite: bool = False
    ) -> Path:
        """Translate one file into ``out_dir`` (see :func:`plan_outputs`); the output is written atomically."""
        out = plan_outputs([path], out_dir, fmt, overwrite=overwrite)[Path(path)]
        return self._save(self.translate(path), out, quality, overwrite=overwrite)

    def _output(
        self, path: Path, y: torch.Tensor, out: Path, quality: int, overwrite: bool
    ) -> tuple[Path, Path | None, str | None]:
        """Save the translation ``y`` of ``path`` as ``out``: (input, output, None), or (input, None, why) when
        ``out`` was created by someone else meanwhile."""
        try:
            return path, self._save(to_image(y), out, quality, overwrite=overwrite), None
        except OutputExistsError as exc:
            return path, None, _failure(path, exc)

    @staticmethod
    def _save(image: Image.Image, out: Path, quality: int, *, overwrite: bool) -> Path:
        """Encode ``image`` in the format of ``out``'s suffix and write it atomically (see :func:`write_output`)."""
        fmt = FORMATS[out.suffix.lstrip(".")]
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
        write_output(out, buffer.getvalue(), overwrite=overwrite)
        return out


def write_output(out: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``out`` through a temporary file in its folder, fsync'ed, then moved into place: renamed
    over ``out`` with ``overwrite``, else linked to it, which never replaces a file. The temporary file is removed
    whatever happens, so a failure leaves no partial file.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is false.
        I2IError: ``out`` cannot be written (a read-only folder, a full disk); the message names it.
    """
    temporary = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        move_into_place(temporary, out, overwrite)
        fsync_folder(out.parent)
    except OSError as exc:
        raise I2IError(f"{out}: cannot write the output ({exc.strerror or exc})") from exc
    finally:
        temporary.unlink(missing_ok=True)


def move_into_place(temporary: Path, out: Path, overwrite: bool) -> None:
    """Rename ``temporary`` to ``out`` (``overwrite``), or link it there, which fails if ``out`` exists; where the
    file system has no hard links, ``out`` is first claimed by creating it exclusively."""
    if overwrite:
        os.replace(temporary, out)
        return
    try:
        try:
            os.link(temporary, out)
        except OSError as exc:
            if isinstance(exc, FileExistsError) or exc.errno not in NO_HARD_LINKS:
                raise
            _claim_and_replace(temporary, out)
    except FileExistsError:
        raise OutputExistsError(
            f"output {out} was created by another program after the outputs were checked: left as it is "
            "(--overwrite replaces it)"
        ) from None


def _claim_and_replace(temporary: Path, out: Path) -> None:
    """Create ``out`` empty, failing if it exists, then rename ``temporary`` over it (removing it on failure)."""
    os.close(os.open(out, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        os.replace(temporary, out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _failure(path: Path, exc: I2IError) -> str:
    """Why ``path`` was skipped, in one line that names it."""
    return str(exc) if isinstance(exc, BadImageError) else f"{path}: {exc}"


def load_translator(
    checkpoint: str | os.PathLike,
    direction: str = "AtoB",
    device: str | torch.device | None = None,
    precision: str = "auto",
    tile: int | None = None,
    overlap: int = 32,
    max_memory: int | None = None,
) -> Translator:
    """A :class:`Translator` for the generator of ``direction`` in ``checkpoint``."""
    device = torch.device(device) if device is not None else resolve_device("auto")
    net = load_generator(checkpoint, direction).to(device).eval()
    return Translator(net, device, resolve_precision(precision, device, key="precision"), tile, overlap, max_memory)


@dataclass(frozen=True)
class ImageInputs:
    """Image files to translate, each with its output's path relative to the output folder (its sub-path in the
    folder it was found in, else its name; the input's suffix), and the folders searched for them."""

    files: dict[Path, Path]
    folders: tuple[Path, ...] = ()

    @classmethod
    def of(cls, inputs: ImageInputs | Iterable[str | os.PathLike]) -> ImageInputs:
        """``inputs`` as is, or image files given directly (each output named after its input)."""
        if isinstance(inputs, ImageInputs):
            return inputs
        return cls({path: Path(path.name) for path in map(Path, inputs)})


def expand_inputs(inputs: Iterable[str]) -> ImageInputs:
    """Files, folders (recursive) and glob patterns -> image files, in order, without duplicates.

    An image found in a folder keeps its sub-path in it; files and glob matches keep their names.
    """
    files: dict[Path, Path] = {}
    folders: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            folders.append(path)
            for found in find_images(path):
                files.setdefault(found, found.relative_to(path))
            continue
        if path.exists():
            matches = [path]
        else:
            matches = sorted(
                Path(p) for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS
            )
            if not matches:
                raise I2IError(f"no such file, folder or matching images: {item}")
        for found in matches:
            files.setdefault(found, Path(found.name))
    return ImageInputs(files, tuple(folders))


def output_name(relative: Path, fmt: str | None = None) -> Path:
    """``relative`` with the suffix of ``fmt`` (default: its own; PNG for formats i2i does not write)."""
    suffix = (fmt or relative.suffix.lstrip(".")).lower()
    return relative.with_suffix(f".{suffix if suffix in FORMATS else 'png'}")


def plan_outputs(
    inputs: ImageInputs | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    fmt: str | None = None,
    *,
    overwrite: bool = False,
    remedy: str = "pass overwrite=True to replace them, or another out_dir",
) -> dict[Path, Path]:
    """Map each input file to the file it is translated into, in ``out_dir``; refuse, before any work, a plan
    that would lose data.

    Raises:
        I2IError: ``out_dir`` is a file, a folder searched for inputs or inside one; two inputs would be written
            to the same file; an output would replace an input (even with ``overwrite``); or outputs exist
            already and ``overwrite`` is false (the message ends with ``remedy``).
    """
    inputs, out_dir = ImageInputs.of(inputs), Path(out_dir)
    check_out_dir(out_dir, inputs.folders)
    plan = {path: out_dir / output_name(relative, fmt) for path, relative in inputs.files.items()}
    _check_collisions(plan)
    _check_existing(plan, overwrite, remedy)
    return plan


def check_out_dir(out_dir: Path, folders: Iterable[Path]) -> None:
    """Refuse an output folder that is (or is inside) a file, an input folder or inside one."""
    _check_not_a_file(out_dir)
    out = out_dir.resolve()
    for folder in folders:
        searched = folder.resolve()
        if out == searched or searched in out.parents:
            where = "is" if out == searched else "is inside"
            raise I2IError(
                f"output folder {out_dir} {where} the input folder {folder}: choose an -o outside the inputs"
            )


def _check_not_a_file(out_dir: Path) -> None:
    """Refuse an output folder that is a file, or would be inside one."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                where = "is" if folder == out_dir else "would be inside"
                raise I2IError(f"output folder {out_dir} {where} the file {folder}: choose a folder for -o")
            return


def _check_collisions(plan: dict[Path, Path]) -> None:
    """Refuse two inputs that would be written to the same output file."""
    by_output: dict[Path, list[Path]] = {}
    for path, out in plan.items():
        by_output.setdefault(out, []).append(path)
    clashes = [(out, paths) for out, paths in by_output.items() if len(paths) > 1]
    if clashes:
        listed = "; ".join(f"{' and '.join(map(str, paths))} -> {out}" for out, paths in clashes[:LISTED])
        more = f" (and {len(clashes) - LISTED} more)" if len(clashes) > LISTED else ""
        raise I2IError(
            f"inputs would be translated into the same file: {listed}{more}; rename them or translate them apart"
        )


def _check_existing(plan: dict[Path, Path], overwrite: bool, remedy: str) -> None:
    """Refuse outputs that are inputs, and (unless ``overwrite``) outputs that exist already."""
    inputs = {_file_id(path): path for path in plan if path.exists()}
    existing = [out for out in plan.values() if out.exists()]
    for out in existing:
        if _file_id(out) in inputs:
            raise I2IError(f"output {out} would replace the input {inputs[_file_id(out)]}: choose another -o")
    if existing and not overwrite:
        listed = ", ".join(map(str, existing[:LISTED])) + (", ..." if len(existing) > LISTED else "")
        raise I2IError(f"{len(existing)} output file(s) exist already ({listed}): {remedy}")


def _file_id(path: Path) -> tuple[int, int]:
    """What makes two paths the same file (links and differently spelled paths included)."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino
