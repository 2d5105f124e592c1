"""An open_clip model with its matmuls in int8: dynamic quantisation of every projection.

Weights are quantised once, per output channel; activations are quantised
at run time, per call (one scale per tensor), so nothing needs calibrating. The kernels are torch's own
quantised CPU kernels (fbgemm, or oneDNN on x86 since torch 2.0), reached
through ``torch.ao.nn.quantized.dynamic.Linear``. torch marks
``torch.ao.quantization`` deprecated in favour of torchao, but torchao's CPU
path for the same scheme (``Int8DynamicActivationInt8WeightConfig``) ran
slower than float32 in eager mode here, as it targets GPUs and
``torch.compile`` (``benchmarks/RESULTS.md``, "Encoder precision"); these
kernels are the ones that make a CPU faster, and they ship with torch.

``torch.ao.quantization.quantize_dynamic`` alone would leave out attention's
projections: ``nn.MultiheadAttention`` keeps its input projection as a bare
parameter, and its output projection is a Linear subclass that the function
skips. They hold a third of a ViT's matmuls, so :class:`Int8Attention` takes
their place.
"""

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear


def quantize(model):
    """``model`` (changed in place, and returned) with every Linear and attention projection in int8."""
    with warnings.catch_warnings():
        # torch announces the deprecation of its quantised tensors on every conversion; the kernels
        # are what this module is for (see above).
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.MultiheadAttention and Int8Attention.supports(child):
                    setattr(parent, name, Int8Attention(child))
                elif type(child) is nn.Linear:
                    setattr(parent, name, int8_linear(child.weight, child.bias))
    return model


def int8_linear(weight, bias):
    """A dynamic-quantised Linear of a float ``weight`` (out x in) and ``bias``."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    linear.weight.data = weight.detach().float()
    if bias is not None:
        linear.bias.data = bias.detach().float()
    # one scale per output channel: closer to float32 than one per tensor (text vectors above all), as fast
    linear.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    out = DynamicLinear.from_float(linear)
    # open_clip reads a block's weight dtype (ResidualAttentionBlock.get_weight_dtype) to cast text inputs;
    # a quantised layer tells it through this attribute, as bitsandbytes' int8 layers do.
    out.int8_original_dtype = torch.float32
    return out


class Int8Attention(nn.MultiheadAttention):
    """Batch-first self-attention with int8 projections; still an ``nn.MultiheadAttention`` (``num_heads``,
    and masks of ``[width, width]`` or ``[rows * heads, width, width]``), as the trimmed text tower needs."""

    def __init__(self, attn):
        nn.Module.__init__(self)  # the float parameters are not kept
        self.embed_dim, self.num_heads, self.head_dim = attn.embed_dim, attn.num_heads, attn.head_dim
        self.batch_first, self.dropout = True, 0.0
        self.kdim = self.vdim = attn.embed_dim
        self._qkv_same_embed_dim = True
        self.in_proj_weight = self.in_proj_bias = self.bias_k = self.bias_v = None
        self.add_zero_attn = False
        self.in_proj = int8_linear(attn.in_proj_weight, attn.in_proj_bias)
        self.out_proj = int8_linear(attn.out_proj.weight, attn.out_proj.bias)

    @staticmethod
    def supports(attn):
        """True for the layout open_clip's ViTs and text towers use: batch first, one in-projection, no extras."""
        return (attn.batch_first and attn._qkv_same_embed_dim and attn.in_proj_bias is not None
                and attn.bias_k is None and not attn.add_zero_attn)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if key is not query or value is not query or key_padding_mask is not None or need_weights:
            raise NotImplementedError("Int8Attention runs self-attention without padding masks or weights")
        rows, width, dim = query.shape
        heads = self.num_heads
        q, k, v = self.in_proj(query).view(rows, width, 3, heads, dim // heads).permute(2, 0, 3, 1, 4).unbind(0)
        if attn_mask is not None and attn_mask.dim() == 3:
            attn_mask = attn_mask.view(rows, heads, width, width)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal and attn_mask is None)
        return self.out_proj(out.transpose(1, 2).reshape(rows, width, dim)), None
