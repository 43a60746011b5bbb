"""i2i plugin: contrastive unpaired translation, methods ``cut`` and ``fastcut`` (Park et al., ECCV 2020).

Also CUT's parts: the patch head ``patch-mlp`` and the contrastive loss ``patchnce``.
"""

from i2i_core import hookimpl
from i2i_cut.head import PatchMLP, patch_mlp
from i2i_cut.method import CUT, FastCUT
from i2i_cut.patchnce import PatchNCELoss, patchnce, patchnce_loss

__all__ = ["CUT", "FastCUT", "PatchMLP", "PatchNCELoss", "patch_mlp", "patchnce", "patchnce_loss"]


@hookimpl
def register_methods(register):
    register("cut", CUT, summary="CUT: one generator, one discriminator, GAN + PatchNCE losses (Park et al., 2020).")
    register("fastcut", FastCUT, summary="FastCUT: CUT without the identity NCE term, flip equivariance, NCE x10.")


@hookimpl
def register_heads(register):
    register("patch-mlp", patch_mlp)


@hookimpl
def register_losses(register):
    register("patchnce", patchnce, role="contrastive")
