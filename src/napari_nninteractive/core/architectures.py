"""What a plans file may name: an explicit allowlist of network classes and building blocks.

A ``plans.json`` names its network class and the conv / norm / dropout / nonlinearity classes
it is built from as dotted strings. Those strings are data from someone else: they are looked up
in :func:`allowed_classes` (the ``dynamic_network_architectures`` U-Nets and residual blocks that
nnU-Net plans use, and the ``torch.nn`` layer classes nnU-Net plans name), never imported, so
no other module and no file in the model folder is ever executed.
"""

from __future__ import annotations

from functools import lru_cache

from torch import nn

#: ``torch.nn`` classes a plans file may name for ``conv_op``, ``norm_op``, ``dropout_op``, ``nonlin``.
TORCH_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.LeakyReLU,
    nn.ReLU,
    nn.PReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Tanh,
    nn.Sigmoid,
)


def _network_classes() -> tuple[type, ...]:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet, ResidualUNet
    from dynamic_network_architectures.building_blocks.residual import BasicBlockD, BottleneckD

    return PlainConvUNet, ResidualEncoderUNet, ResidualUNet, BasicBlockD, BottleneckD


@lru_cache(maxsize=1)
def allowed_classes() -> dict[str, type]:
    """Every accepted dotted name -> class (``torch.nn.Conv3d`` and ``torch.nn.modules.conv.Conv3d`` alike)."""
    table: dict[str, type] = {}
    cls: type
    for cls in TORCH_LAYERS:
        table[f"torch.nn.{cls.__name__}"] = cls
        table[f"{cls.__module__}.{cls.__name__}"] = cls
    for cls in _network_classes():
        table[f"{cls.__module__}.{cls.__name__}"] = cls
    return table


def lookup(dotted: object, where: str, error: type[Exception]) -> type:
    """The class a plans file names, or ``error`` saying that only allowlisted classes are used."""
    if not isinstance(dotted, str):
        raise error(f"{where} must be a dotted class name (a string), not {type(dotted).__name__}.")
    cls = allowed_classes().get(dotted)
    if cls is None:
        raise error(
            f"{where} names {dotted!r}, which is not a network class or layer this plugin builds (a plans file "
            "is data: only the dynamic_network_architectures U-Nets and torch.nn conv / norm / dropout / "
            "nonlinearity classes may be named). The model folder is not supported."
        )
    return cls


__all__ = ["TORCH_LAYERS", "allowed_classes", "lookup"]
