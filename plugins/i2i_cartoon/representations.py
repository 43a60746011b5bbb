"""The cartoon representations the ``cartoon`` method judges and targets, after White-box cartoonization (Wang &
Yu, CVPR 2020) and CartoonGAN / AnimeGAN, without pretrained networks. Images are (B, 3, H, W) in [-1, 1].

- :func:`surface`: an edge-preserving self-smoothing (guided filter): the flat shading a cartoon has, texture gone.
- :func:`random_gray`: a grayscale with random channel weights: strokes and outlines, colour set aside.
- :func:`edge_smoothed`: cartoons whose outlines are blurred: what a cartoon is not (shown as fakes).
- :func:`superpixel_flatten`: each superpixel painted in its mean colour: a flat-colour target;
  :func:`quantize_colours` then keeps a small palette.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from i2i_core.layers import check_images, guided_filter

#: Ranges of the random grayscale's blue, green and red weights (White-box cartoonization's).
GRAY_WEIGHT_RANGES = ((0.199, 0.399), (0.487, 0.687), (0.014, 0.214))  # red, green, blue


def surface(images: torch.Tensor, radius: int = 5, eps: float = 0.2) -> torch.Tensor:
    """The surface representation: ``images`` filtered by themselves (:func:`guided_filter`), which flattens
    texture and shading while strong edges stay.

    Example:
        >>> x = torch.rand(1, 3, 16, 16) * 2 - 1
        >>> surface(x).shape
        torch.Size([1, 3, 16, 16])
    """
    return guided_filter(images, images, radius, eps)


def draw_gray_weights(generator: torch.Generator | None = None) -> torch.Tensor:
    """Red, green and blue weights for :func:`random_gray`, each uniform in its :data:`GRAY_WEIGHT_RANGES`: (3,)."""
    low = torch.tensor([r[0] for r in GRAY_WEIGHT_RANGES])
    high = torch.tensor([r[1] for r in GRAY_WEIGHT_RANGES])
    return low + (high - low) * torch.rand(3, generator=generator)


def random_gray(images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The texture representation: ``(wr R + wg G + wb B) / (wr + wg + wb)`` with ``weights`` (3,), repeated on the
    three channels (what a discriminator takes): (B, 3, H, W) -> (B, 3, H, W).

    Example:
        >>> x = torch.zeros(1, 3, 2, 2); x[:, 0] = 1
        >>> random_gray(x, torch.tensor([1.0, 1.0, 2.0]))[0, :, 0, 0]
        tensor([0.2500, 0.2500, 0.2500])
    """
    check_images(images, "random_gray images")
    w = (weights / weights.sum()).to(images.device, images.dtype).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def _gaussian_blur(images: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    taps = torch.arange(size, dtype=images.dtype, device=images.device) - (size - 1) / 2
    row = torch.exp(-(taps**2) / (2 * sigma**2))
    row = row / row.sum()
    kernel = torch.outer(row, row).expand(images.shape[1], 1, size, size)
    padded = F.pad(images, [size // 2] * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=images.shape[1])


def edge_mask(images: torch.Tensor, threshold: float = 0.2, dilation: int = 5) -> torch.Tensor:
    """Pixels near an edge: Sobel gradient magnitude of the mean of the channels (on a 0-1 scale, the kernel
    normalised to sum of absolute weights 8) above ``threshold``, dilated by a ``dilation`` square: (B, 1, H, W)
    of 0 and 1."""
    gray = (images.mean(1, keepdim=True) + 1) / 2
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=images.dtype, device=images.device) / 8
    padded = F.pad(gray, [1, 1, 1, 1], mode="replicate")
    gx = F.conv2d(padded, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(padded, sobel.t().reshape(1, 1, 3, 3))
    edges = ((gx**2 + gy**2).sqrt() > threshold).to(images.dtype)
    return F.max_pool2d(edges, dilation, stride=1, padding=dilation // 2)


def edge_smoothed(images: torch.Tensor, threshold: float = 0.2, dilation: int = 5, blur: int = 5) -> torch.Tensor:
    """CartoonGAN's edge-smoothed cartoons: a Gaussian blur (``blur`` wide) inside the dilated edges
    (:func:`edge_mask`), the rest as it was. A discriminator shown them as fakes learns that crisp outlines make a
    cartoon.

    Example:
        >>> x = -torch.ones(1, 3, 16, 16); x[..., 8:] = 1  # a sharp vertical edge
        >>> y = edge_smoothed(x)
        >>> bool(y[0, 0, 0, 7] > -1 and y[0, 0, 0, 8] < 1), bool((y[..., :3] == -1).all())
        (True, True)
    """
    check_images(images, "edge_smoothed images")
    mask = edge_mask(images, threshold, dilation)
    return mask * _gaussian_blur(images, blur, blur / 3) + (1 - mask) * images


def _grid(segments: int, height: int, width: int) -> tuple[int, int]:
    rows = max(1, round((segments * height / width) ** 0.5))
    return rows, max(1, round(segments / rows))


def _features(images: torch.Tensor, step: float, compactness: float, scale: int = 1) -> torch.Tensor:
    """SLIC's features of every pixel of ``images``: colour (0-255 scale) over ``compactness``, and position in grid
    steps of ``step`` full-size pixels, for pixels ``scale`` full-size pixels wide: (B, H * W, 5)."""
    b, _, h, w = images.shape
    ys = (torch.arange(h, device=images.device, dtype=torch.float32) + 0.5) * scale
    xs = (torch.arange(w, device=images.device, dtype=torch.float32) + 0.5) * scale
    position = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).flatten(1).t() / step  # (N, 2)
    colour = images.float().flatten(2).transpose(1, 2) * 127.5 / compactness  # (B, N, 3)
    return torch.cat([colour, position.expand(b, -1, -1)], 2)


@torch.no_grad()
def superpixel_labels(
    images: torch.Tensor, segments: int = 200, compactness: float = 40.0, iterations: int = 5, scale: int = 2
) -> torch.Tensor:
    """Superpixel labels of ``images``: k-means over colour and position (SLIC's features; ``compactness`` weighs
    position against colour, colour on a 0-255 scale, position in grid steps, as SLIC's ``m``) from a regular
    grid of about ``segments`` centres, each pixel compared with every centre. The centres are found at
    1/``scale`` of the size, for speed; every full-size pixel then takes the nearest. (B, 3, H, W) ->
    (B, H * W) long."""
    _, _, h, w = images.shape
    rows, cols = _grid(segments, h, w)
    step = max(h / rows, w / cols)
    small = F.avg_pool2d(images.float(), scale) if scale > 1 else images.float()
    features = _features(small, step, compactness, scale)
    sh, sw = small.shape[-2:]
    centre_y = ((torch.arange(rows, device=images.device) + 0.5) * sh / rows).long()
    centre_x = ((torch.arange(cols, device=images.device) + 0.5) * sw / cols).long()
    centres = features[:, (centre_y[:, None] * sw + centre_x[None, :]).flatten()]  # (B, K, 5)
    for _ in range(iterations):
        one_hot = F.one_hot(torch.cdist(features, centres).argmin(2), centres.shape[1]).float()  # (B, N, K)
        counts = one_hot.sum(1)[..., None]
        centres = torch.where(counts > 0, (one_hot.transpose(1, 2) @ features) / counts.clamp(min=1), centres)
    return torch.cdist(_features(images, step, compactness), centres).argmin(2)


@torch.no_grad()
def superpixel_flatten(
    images: torch.Tensor, segments: int = 200, compactness: float = 40.0, iterations: int = 5, scale: int = 2
) -> torch.Tensor:
    """The structure representation: each superpixel of ``images`` (:func:`superpixel_labels`) painted in its mean
    colour. No gradient: a stop-gradient target.

    Returns:
        (B, 3, H, W), flat within each superpixel.

    Example:
        >>> x = -torch.ones(1, 3, 16, 16); x[..., 8:] = 1
        >>> bool(torch.equal(superpixel_flatten(x, segments=4), x))
        True
    """
    check_images(images, "superpixel_flatten images")
    labels = superpixel_labels(images, segments, compactness, iterations, scale)
    one_hot = F.one_hot(labels, int(labels.max()) + 1).to(images.dtype)  # (B, N, K)
    pixels = images.flatten(2).transpose(1, 2)  # (B, N, 3)
    means = (one_hot.transpose(1, 2) @ pixels) / one_hot.sum(1)[..., None].clamp(min=1)
    return (one_hot @ means).transpose(1, 2).reshape(images.shape)


@torch.no_grad()
def quantize_colours(images: torch.Tensor, colours: int = 16, iterations: int = 8) -> torch.Tensor:
    """Each pixel of ``images`` replaced by the nearest of ``colours`` colours, found per image by k-means over its
    pixels (RGB), started from the pixels at evenly spaced quantiles of brightness: a cartoon's small palette.
    (B, 3, H, W) -> same, at most ``colours`` distinct colours per image.

    Example:
        >>> x = torch.linspace(-1, 1, 64).view(1, 1, 8, 8).expand(1, 3, 8, 8)
        >>> len(quantize_colours(x, 4)[0, 0].unique())
        4
    """
    check_images(images, "quantize_colours images")
    pixels = images.float().flatten(2).transpose(1, 2)  # (B, N, 3)
    order = pixels.sum(2).argsort(1)
    picks = ((torch.arange(colours, device=images.device) + 0.5) * pixels.shape[1] / colours).long()
    centres = torch.gather(pixels, 1, order[:, picks, None].expand(-1, -1, 3))  # (B, K, 3)
    for _ in range(iterations):
        one_hot = F.one_hot(torch.cdist(pixels, centres).argmin(2), colours).float()
        counts = one_hot.sum(1)[..., None]
        centres = torch.where(counts > 0, (one_hot.transpose(1, 2) @ pixels) / counts.clamp(min=1), centres)
    nearest = torch.cdist(pixels, centres).argmin(2)
    chosen = torch.gather(centres, 1, nearest[..., None].expand(-1, -1, 3))
    return chosen.transpose(1, 2).reshape(images.shape).to(images.dtype)


def lowpass(images: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """``images`` averaged over ``factor`` x ``factor`` blocks: their colours and shapes without texture,
    (B, C, H, W) -> (B, C, H / factor, W / factor) (sides rounded down)."""
    return F.avg_pool2d(images, factor)
