"""timm.models.layers stand-in: DropPath, to_2tuple, trunc_normal_."""
import collections.abc
import math

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth; the identity in eval mode or with drop_prob 0/None."""

    def __init__(self, drop_prob=None, scale_by_keep=True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        if not self.drop_prob or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if self.scale_by_keep:
            mask.div_(keep)
        return x * mask


def to_2tuple(x):
    if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
        return tuple(x)
    return (x, x)


@torch.no_grad()
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Normal(mean, std) truncated to [a, b] (absolute bounds), in place.
    Only reached from TinyViT._init_weights; the fixtures overwrite every
    value afterwards, so its exact stream does not matter."""
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)
