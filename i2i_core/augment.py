"""Differentiable augmentation of what a discriminator sees (DiffAugment, Zhao et al., 2020), with an optional
adaptive probability (ADA, Karras et al., 2020).

A discriminator trained on few images memorises them; augmenting its inputs, real and fake alike, with random
transformations ``T`` keeps it from doing so. ``T`` is differentiable, so the generator's adversarial gradient
flows through it: the generator is pushed towards images whose augmentations look real, which (for these ops)
are real-looking images, not augmented-looking ones.

Ops (images in [-1, 1], (B, C, H, W), each image drawn independently):

- ``color``: brightness + U(-0.5, 0.5), then saturation x U(0, 2) around each pixel's channel mean, then
  contrast x U(0.5, 1.5) around the image's mean.
- ``translation``: an integer shift of up to 1/8 of the height and of the width, zero-filled.
- ``cutout``: a rectangle of half the height and half the width (a square on square images), anywhere inside the
  image, set to 0.

Each op of a policy is applied to each image with probability ``p``. With ADA, ``p`` starts at 0 and follows how
sure the discriminator is on reals; see :class:`DiscriminatorAugment`.

Example:
    >>> x = torch.zeros(2, 3, 16, 16)
    >>> diff_augment(x, "translation,cutout", p=1.0).shape
    torch.Size([2, 3, 16, 16])
    >>> diff_augment(x, "color", p=0.0) is x  # p = 0: the input itself, and no random draws
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from i2i_core.errors import did_you_mean

#: The recipe's ``augment`` table and its defaults: ``policy = ""`` turns augmentation off.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "policy": "",
    "probability": 1.0,
    "ada_target": 0.0,
    "ada_interval": 4,
    "ada_steps": 500,
}

#: An op: ``op(x, generator) -> x'``, (B, C, H, W) -> (B, C, H, W), each image drawn independently.
Op = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


# -- draws ----------------------------------------------------------------------------------------------------


def _uniform(x: torch.Tensor, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """(B, 1, 1, 1) draws of U(low, high) in ``x``'s dtype, on ``x``'s device."""
    u = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=generator)
    return (u * (high - low) + low).to(x.dtype)


def _integers(x: torch.Tensor, low: int, high: int, generator: torch.Generator | None) -> torch.Tensor:
    """(B,) integers drawn uniformly from ``low..high`` (both included), on ``x``'s device."""
    return torch.randint(low, high + 1, (x.shape[0],), device=x.device, generator=generator)


# -- deterministic transforms: the ops with their parameters given ---------------------------------------------


def adjust_brightness(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``x + offset``: ``offset`` (B, 1, 1, 1) (or anything that broadcasts), one value per image."""
    return x + offset


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's deviation from its mean over the channels by ``factor`` (B, 1, 1, 1): 0 gives grey."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * factor + mean


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each image's deviation from its mean (over channels and pixels) by ``factor`` (B, 1, 1, 1)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor + mean


def translate(x: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor) -> torch.Tensor:
    """Shift each image by whole pixels: ``out[b, :, i, j] = x[b, :, i - shift_y[b], j - shift_x[b]]``, 0 where
    that falls outside ``x`` (a positive shift moves the content down / right).

    Args:
        x: (B, C, H, W).
        shift_y, shift_x: (B,) integer tensors on ``x``'s device.

    Example:
        >>> x = torch.arange(1.0, 5.0).view(1, 1, 1, 4)
        >>> translate(x, torch.tensor([0]), torch.tensor([1]))
        tensor([[[[0., 1., 2., 3.]]]])
    """
    B, C, H, W = x.shape
    rows = torch.arange(H, device=x.device).unsqueeze(0) - shift_y.view(B, 1)  # source row of each row, (B, H)
    cols = torch.arange(W, device=x.device).unsqueeze(0) - shift_x.view(B, 1)  # (B, W)
    inside = ((rows >= 0) & (rows < H)).view(B, 1, H, 1) & ((cols >= 0) & (cols < W)).view(B, 1, 1, W)
    out = x.gather(2, rows.clamp(0, H - 1).view(B, 1, H, 1).expand(B, C, H, W))
    out = out.gather(3, cols.clamp(0, W - 1).view(B, 1, 1, W).expand(B, C, H, W))
    return out.masked_fill(~inside, 0)


def cut_out(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Set the ``height`` x ``width`` rectangle at (``top[b]``, ``left[b]``) of each image to 0.

    Args:
        x: (B, C, H, W).
        top, left: (B,) integer tensors on ``x``'s device.

    Example:
        >>> cut_out(torch.ones(1, 1, 3, 3), torch.tensor([1]), torch.tensor([0]), 2, 2)[0, 0]
        tensor([[1., 1., 1.],
                [0., 0., 1.],
                [0., 0., 1.]])
    """
    B, _, H, W = x.shape
    rows = torch.arange(H, device=x.device).unsqueeze(0) - top.view(B, 1)
    cols = torch.arange(W, device=x.device).unsqueeze(0) - left.view(B, 1)
    in_rows = ((rows >= 0) & (rows < height)).view(B, 1, H, 1)
    in_cols = ((cols >= 0) & (cols < width)).view(B, 1, 1, W)
    return x.masked_fill(in_rows & in_cols, 0)


# -- the random ops ---------------------------------------------------------------------------------------------


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness (+ U(-0.5, 0.5)), saturation (x U(0, 2)) and contrast (x U(0.5, 1.5)), in that order."""
    x = adjust_brightness(x, _uniform(x, -0.5, 0.5, generator))
    x = adjust_saturation(x, _uniform(x, 0.0, 2.0, generator))
    return adjust_contrast(x, _uniform(x, 0.5, 1.5, generator))


def translation(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    """A random integer shift of each image, up to ``ratio`` of its height and of its width each way."""
    _, _, H, W = x.shape
    most_y, most_x = int(H * ratio), int(W * ratio)
    shift_y = _integers(x, -most_y, most_y, generator)
    shift_x = _integers(x, -most_x, most_x, generator)
    return translate(x, shift_y, shift_x)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    """Zero a rectangle of ``ratio`` of the height by ``ratio`` of the width (rounded), at a random position
    inside each image."""
    _, _, H, W = x.shape
    height, width = max(1, round(H * ratio)), max(1, round(W * ratio))
    top = _integers(x, 0, H - height, generator)
    left = _integers(x, 0, W - width, generator)
    return cut_out(x, top, left, height, width)


#: Every op by its policy name, in no particular order (a policy applies its ops in the order it names them).
OPS: dict[str, Op] = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """The op names of a policy: ``"color, translation"`` -> ``("color", "translation")``; ``""`` -> ``()``.

    Raises ``ValueError`` naming an unknown op, with a suggestion.

    Example:
        >>> parse_policy("color,cutout")
        ('color', 'cutout')
    """
    parts = policy.split(",") if isinstance(policy, str) else list(policy)
    names = tuple(part.strip() for part in parts if part.strip())
    for name in names:
        if name not in OPS:
            raise ValueError(f"unknown augmentation {name!r}.{did_you_mean(name, OPS)} Known: {', '.join(OPS)}")
    return names


def diff_augment(
    x: torch.Tensor, policy: str | Sequence[str], p: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply each op of ``policy``, in order, to each image of ``x`` independently with probability ``p``.

    Differentiable with respect to ``x``. Random numbers come from ``generator`` (which must live on ``x``'s
    device), or by default from torch's global generator of ``x``'s device. With ``p = 0`` or an empty policy it
    returns ``x`` itself and draws nothing; with ``p = 1`` every op applies to every image and no per-image
    coin is drawn.

    Args:
        x: (B, C, H, W) images in [-1, 1], any floating dtype.
        policy: comma-separated op names (``"color,translation,cutout"``) or a sequence of them; see :data:`OPS`.
        p: the probability of each op on each image, in [0, 1].
        generator: a ``torch.Generator`` on ``x``'s device, or ``None`` for the global one.

    Returns:
        (B, C, H, W), same dtype and device as ``x``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(4, 3, 8, 8) * 2 - 1
        >>> y = diff_augment(x, "color,translation,cutout", p=0.5, generator=g)
        >>> y.shape, y.dtype
        (torch.Size([4, 3, 8, 8]), torch.float32)
    """
    names = parse_policy(policy)
    if p <= 0 or not names:
        return x
    for name in names:
        op = OPS[name]
        if p >= 1:
            x = op(x, generator)
        else:
            chosen = torch.rand(x.shape[0], device=x.device, generator=generator) < p
            x = torch.where(chosen.view(-1, 1, 1, 1), op(x, generator), x)
    return x


# -- the recipe's augment table ---------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_augment(augment: Mapping[str, Any], fail: Callable[[str, str], Any]) -> None:
    """Check the recipe's ``augment`` table (its keys and types checked already); ``fail(key, message)`` raises.

    ``key`` is the dotted recipe key (``augment.policy``...).

    Example:
        >>> def fail(key, message):
        ...     raise ValueError(f"{key} {message}")
        >>> check_augment({**AUGMENT_DEFAULTS, "policy": "color,cutot"}, fail)
        Traceback (most recent call last):
        ...
        ValueError: augment.policy has an unknown op 'cutot'. Did you mean 'cutout'? Known ops: color, translation, cutout
    """
    values = {**AUGMENT_DEFAULTS, **augment}
    policy = values["policy"]
    if not isinstance(policy, str):
        fail("augment.policy", f"must be a string of comma-separated ops, got {policy!r}")
    for name in (part.strip() for part in policy.split(",")):
        if name not in OPS and (name or policy.strip()):
            shown = f"an empty op in {policy!r}" if not name else f"an unknown op {name!r}"
            fail("augment.policy", f"has {shown}.{did_you_mean(name, OPS)} Known ops: {', '.join(OPS)}")
    probability, target = values["probability"], values["ada_target"]
    if not _is_number(probability) or not 0 <= probability <= 1:
        fail("augment.probability", f"must be in [0, 1], got {probability!r}")
    if not _is_number(target) or not 0 <= target < 1:
        fail("augment.ada_target", f"must be in [0, 1) (0 turns adaptive augmentation off), got {target!r}")
    for key in ("ada_interval", "ada_steps"):
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fail(f"augment.{key}", f"must be an integer >= 1, got {value!r}")


def _raise_value_error(key: str, message: str) -> None:
    raise ValueError(f"{key} {message}")


def augmented(
    augment: DiscriminatorAugment | None, images: torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``images`` as a discriminator sees them: through ``augment`` and then ``prepare`` (a method's cast to its
    compute copies' dtype and layout), or ``images`` themselves without augmentation."""
    return images if augment is None else prepare(augment(images))


def end_step(augment: DiscriminatorAugment | None, losses: dict[str, float], p: float | None, images: int) -> dict:
    """End a method's training step: ``losses``, with ``aug_p`` (``p``, the probability the step augmented with)
    when augmenting; the adaptive probability counts the step's ``images``."""
    if augment is not None:
        augment.step(images)
        losses["aug_p"] = p
    return losses


def gan_threshold(gan_loss: Any) -> float:
    """The discriminator output halfway between a GAN loss's real and fake targets: its ``decision_threshold``
    attribute (0.5 for ``lsgan``, 0 for ``bce`` logits), 0 when it declares none."""
    return float(getattr(gan_loss, "decision_threshold", 0.0))


class DiscriminatorAugment:
    """What a method runs its discriminators' inputs through, and the adaptive probability's state.

    Call it on every image batch a discriminator sees, real and fake, in the discriminator's step and in the
    generator's: ``D(augment(x))``. With ADA (``ada_target > 0``), hand it the discriminator's outputs on reals
    (:meth:`observe`) and count each step's images (:meth:`step`): every ``ada_interval`` steps,
    ``r = mean(sign(D(real) - threshold))`` over the outputs observed since the last adjustment, and
    ``p += sign(r - ada_target) * images / ada_steps``, clamped to [0, 1]: ``ada_steps`` images take ``p`` from 0
    to 1. ``p`` rises while the discriminator is surer of reals than ``ada_target``, and falls otherwise.

    Under torchrun (:attr:`distributed` set by the method's ``distribute``), each step's sums are added over the
    processes, so every process moves ``p`` alike and a checkpoint (rank 0's) holds every process's sums.

    Args:
        policy: comma-separated op names; ``""`` turns augmentation off (calls return their input, no draws).
        probability: ``p`` when ADA is off.
        ada_target, ada_interval, ada_steps: ADA's settings (``ada_target = 0``: off; ADA starts at ``p = 0``).
        threshold: the discriminator output between the real and fake targets (see :func:`gan_threshold`).

    Example:
        >>> augment = DiscriminatorAugment("translation", ada_target=0.6, ada_interval=1, ada_steps=100)
        >>> augment.p
        0.0
        >>> augment.observe(torch.ones(2, 1, 4, 4))  # sure of every real: r = 1 > 0.6
        >>> augment.step(batch_size=2)
        >>> augment.p
        0.02
    """

    def __init__(
        self,
        policy: str = "",
        probability: float = 1.0,
        ada_target: float = 0.0,
        ada_interval: int = 4,
        ada_steps: int = 500,
        threshold: float = 0.0,
    ) -> None:
        check_augment(
            {
                "policy": policy,
                "probability": probability,
                "ada_target": ada_target,
                "ada_interval": ada_interval,
                "ada_steps": ada_steps,
            },
            _raise_value_error,
        )
        self.ops = parse_policy(policy)
        self.probability, self.threshold = float(probability), float(threshold)
        self.ada_target, self.ada_interval, self.ada_steps = float(ada_target), ada_interval, ada_steps
        self.distributed = False
        self.device = torch.device("cpu")  # where the discriminator's outputs live (for torchrun's sums)
        self.p = 0.0 if self.adaptive else self.probability
        self._reset()

    @classmethod
    def from_recipe(cls, augment: Mapping[str, Any] | None, threshold: float = 0.0) -> DiscriminatorAugment:
        """From the recipe's ``augment`` table (missing keys take :data:`AUGMENT_DEFAULTS`; ``None``: off)."""
        values = {**AUGMENT_DEFAULTS, **(augment or {})}
        return cls(
            values["policy"],
            values["probability"],
            values["ada_target"],
            values["ada_interval"],
            values["ada_steps"],
            threshold=threshold,
        )

    @property
    def enabled(self) -> bool:
        """Whether the policy names any op."""
        return bool(self.ops)

    @property
    def adaptive(self) -> bool:
        """Whether ADA moves ``p``."""
        return self.enabled and self.ada_target > 0

    def _reset(self) -> None:
        """Start an interval. The sums are floats, or device tensors between adjustments (no synchronisation)."""
        self.sign_sum: torch.Tensor | float = 0.0  # sum of sign(D(real) - threshold) this interval
        self.count: torch.Tensor | float = 0  # discriminator outputs on reals observed this interval
        self.images: torch.Tensor | float = 0  # images counted by step() this interval
        self.steps = 0  # steps counted by step() this interval
        self._step_signs: torch.Tensor | float = 0.0  # what observe() saw since the last step()
        self._step_count = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) augmented with the current ``p``, in ``x``'s dtype: the ops run in fp32 (their means
        would lose precision in bf16). Off, or at ``p = 0``, it returns ``x`` itself and draws nothing."""
        if not self.ops or self.p <= 0:
            return x
        if x.dtype == torch.float32:
            return diff_augment(x, self.ops, self.p)
        return diff_augment(x.float(), self.ops, self.p).to(x.dtype)

    def observe(self, real_logits: torch.Tensor) -> None:
        """Count a discriminator's outputs on (augmented) reals, any shape. A no-op unless ADA is on; adds no
        synchronisation with the device (the sum stays a device tensor until ``p`` moves)."""
        if not self.adaptive:
            return
        self._step_signs = self._step_signs + torch.sign(real_logits.detach().float() - self.threshold).sum()
        self._step_count += real_logits.numel()
        self.device = real_logits.device

    def step(self, batch_size: int) -> None:
        """End a training step of ``batch_size`` real images per discriminator; every ``ada_interval`` steps,
        move ``p`` (which waits for the device). A no-op unless ADA is on.

        Under torchrun each step's sums are added over the processes as they come (a three-number all-reduce,
        without waiting for it), so the interval's sums, those a checkpoint keeps, are every process's."""
        if not self.adaptive:
            return
        signs, count, images = self._step_signs, self._step_count, batch_size
        self._step_signs, self._step_count = 0.0, 0
        if self.distributed:
            signs, count, images = self._summed_over_processes(signs, count, images)
        self.sign_sum = self.sign_sum + signs
        self.count = self.count + count
        self.images = self.images + images
        self.steps += 1
        if self.steps < self.ada_interval:
            return
        sign_sum, count, images = float(self.sign_sum), float(self.count), float(self.images)
        if count > 0:
            r = sign_sum / count
            direction = (r > self.ada_target) - (r < self.ada_target)
            self.p = min(1.0, max(0.0, self.p + direction * images / self.ada_steps))
        self._reset()

    def _summed_over_processes(
        self, signs: torch.Tensor | float, count: int, images: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch.distributed as dist

        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        sums = torch.stack(
            [
                torch.as_tensor(signs, device=self.device).to(dtype),
                torch.full((), count, dtype=dtype, device=self.device),
                torch.full((), images, dtype=dtype, device=self.device),
            ]
        )
        dist.all_reduce(sums)
        return sums[0], sums[1], sums[2]

    @property
    def ada_r(self) -> float | None:
        """r so far in this interval (with what was observed since the last step), or ``None`` before any
        observation. Waits for the device."""
        count = float(self.count) + self._step_count
        return (float(self.sign_sum) + float(self._step_signs)) / count if count else None

    def state_dict(self) -> dict[str, Any]:
        """``p`` and the interval's sums, JSON-able (floats round-trip exactly through JSON). Waits for the
        device."""
        state = {
            "p": self.p,
            "sign_sum": float(self.sign_sum),
            "count": int(self.count),
            "images": int(self.images),
            "steps": self.steps,
        }
        if self._step_count:  # observed in a step that has not ended (the engine saves between steps)
            state.update(step_sign_sum=float(self._step_signs), step_count=self._step_count)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned. Without ADA, ``p`` stays the recipe's ``probability``."""
        if not self.adaptive:
            return
        p = float(state["p"])
        if not (math.isfinite(p) and 0 <= p <= 1):
            raise ValueError(f"augmentation probability must be in [0, 1], got {p!r}")
        self._reset()
        self.p = p
        self.sign_sum = float(state.get("sign_sum", 0.0))
        self.count, self.images, self.steps = (int(state.get(key, 0)) for key in ("count", "images", "steps"))
        self._step_signs, self._step_count = float(state.get("step_sign_sum", 0.0)), int(state.get("step_count", 0))

    def __repr__(self) -> str:
        ada = f", ada_target={self.ada_target}" if self.adaptive else ""
        return f"DiscriminatorAugment(policy={','.join(self.ops)!r}, p={self.p}{ada})"
