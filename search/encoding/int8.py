"""An open_clip model with its matmuls in int8: per-row dynamic quantisation of every projection.

Weights are quantised once, per output channel. Activations are quantised
at run time, each row (each token) on its own scale, so nothing needs
calibrating and a row's result does not depend on the rows beside it: a
photo's vector is the same in any batch, as a build that resumes, or
re-embeds a few files, needs.

The kernel is torch's fused dynamic int8 Linear (``quantized::linear_dynamic``:
fbgemm, quantisation, an int32-accumulated product and the float output in
one call). It takes one activation scale per call, from the call's range; so
each row is first divided by its largest magnitude, and a sentinel row that
spans the whole range is appended, which makes that range, hence the scale,
the same in every call; the output rows are multiplied back. Torch marks
these quantised kernels deprecated in favour of torchao, whose CPU path ran
slower than float32 in eager mode here; ``torch._int_mm`` with the scaling
done in separate float passes was exact per row too but no faster than
float32 on 2 busy cores (``benchmarks/RESULTS.md``, "CPU int8 per row").

``nn.MultiheadAttention`` keeps its input projection as a bare parameter and
calls it through ``F.multi_head_attention_forward``, so :class:`Int8Attention`
takes its place to reach both of its projections: they hold a third of a
ViT's matmuls.
"""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

# fbgemm quantises activations to 0..127 (``reduce_range``: pairs of u8 x s8 products cannot saturate int16 on
# CPUs without VNNI). With the range [-64/63, 1] the scale is 1/63 and the zero point exactly 64: rows scaled
# into [-1, 1] get 63 steps a side.
_LOW, _HIGH = -64 / 63, 1.0
_SHRINK = 1 - 1e-6  # keeps a row's largest magnitude, after rounding, inside [-1, 1]


def quantize(model):
    """``model`` (changed in place, and returned) with every Linear and attention projection in int8."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.MultiheadAttention and Int8Attention.supports(child):
                setattr(parent, name, Int8Attention(child))
            elif type(child) is nn.Linear:
                setattr(parent, name, Int8Linear(child.weight, child.bias))
    return model


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with ``W`` in int8 per output channel and each row of ``x`` in int8 on its own scale."""

    # open_clip reads a block's weight dtype (ResidualAttentionBlock.get_weight_dtype) to cast text inputs;
    # a quantised layer tells it through this attribute, as bitsandbytes' int8 layers do.
    int8_original_dtype = torch.float32

    def __init__(self, weight, bias):
        super().__init__()
        weight = weight.detach().float()
        self.out_features, self.in_features = weight.shape
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127
        with warnings.catch_warnings():
            # torch announces the deprecation of its quantised tensors at every conversion (see above)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            qweight = torch.quantize_per_channel(weight, scale.double(), torch.zeros_like(scale, dtype=torch.long),
                                                 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(qweight, None)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        sentinel = torch.zeros(self.in_features)
        sentinel[0], sentinel[-1] = _LOW, _HIGH
        self.register_buffer("sentinel", sentinel)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, self.in_features).float()
        rows = x.shape[0]
        low, high = torch.aminmax(x, dim=-1, keepdim=True)
        magnitude = torch.maximum(high, low.neg_()).clamp_min_(1e-30)
        scaled = torch.empty(rows + 1, self.in_features)
        torch.mul(x, magnitude.reciprocal().mul_(_SHRINK), out=scaled[:rows])
        scaled[rows] = self.sentinel
        out = torch.ops.quantized.linear_dynamic(scaled, self._packed, True)[:rows]
        out = out.mul_(magnitude) if self.bias is None else torch.addcmul(self.bias, out, magnitude, out=out)
        return out.view(*shape[:-1], self.out_features)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


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
        self.in_proj = Int8Linear(attn.in_proj_weight, attn.in_proj_bias)
        self.out_proj = Int8Linear(attn.out_proj.weight, attn.out_proj.bias)

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
