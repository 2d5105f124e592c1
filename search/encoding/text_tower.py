"""Text encoding that stops at the end-of-text token, with short texts packed together.

A CLIP text tower pads every query to 77 tokens, but its attention is causal
and it reads its output at the end-of-text token, so the padding after that
token cannot change the result. A query of a few words needs a small part of
the 77 positions; running only those gives the same vector in much less time
on a CPU.

A call of several texts would still pad each to the longest. Instead, short
texts share a row of that width, one after another, each attending only to
itself and reading positions from 0, so the model's matmuls run on little
more than the texts' own tokens. ``benchmarks/bench_query.py`` measures both
(``benchmarks/RESULTS.md``, "Queries").
"""

import torch
from open_clip.model import CLIP

PROBES = ["a", "a photo of a dog on the beach at sunset", "x " * 100]  # short, typical, truncated


class TrimmedTextTower:
    """``encode(tokens)`` for an open_clip ``CLIP`` whose text tower is causal with end-of-text pooling."""

    def __init__(self, model):
        self.model = model
        self.heads = model.transformer.resblocks[0].attn.num_heads

    @classmethod
    def for_model(cls, model, tokenizer, device):
        """The trimmed tower when it gives the model's own vectors for probe texts, else ``None``.

        The check at load guards against architectures (and open_clip
        versions) this shortcut does not describe.
        """
        if not isinstance(model, CLIP) or model.text_pool_type != "argmax" or model.attn_mask is None:
            return None
        if not isinstance(model.transformer.resblocks[0].attn, torch.nn.MultiheadAttention):
            return None  # its per-row masks are the [rows * heads, width, width] of torch's attention
        tower = cls(model)
        # one at a time (trimmed to each text), then together (the two short ones share a row)
        with torch.inference_mode():
            for texts in [[text] for text in PROBES] + [PROBES]:
                tokens = tokenizer(texts).to(device)
                full, trimmed = model.encode_text(tokens).float(), tower.encode(tokens).float()
                if not torch.allclose(full, trimmed, atol=1e-4 * float(full.abs().max())):
                    return None
        return tower

    def encode(self, tokens, pack=None):
        """Unnormalised features of ``[N, context]`` tokens, as ``model.encode_text``.

        ``pack``: lay short texts out in shared rows; by default on a CPU
        only, where arithmetic is the cost. A GPU has arithmetic to spare for
        a few queries, and the layout would add a few small copies per text.
        """
        m = self.model
        lengths = (tokens.argmax(dim=-1) + 1).tolist()  # the end-of-text token has the largest id
        width = max(lengths)
        if pack is None:
            pack = tokens.device.type == "cpu"
        rows = pack_rows(lengths, width) if pack else None
        if rows is not None and len(rows) < len(lengths):
            tokens, positions, mask, ends = self._packed(tokens, lengths, rows, width)
        else:
            tokens, positions, mask = tokens[:, :width], slice(0, width), m.attn_mask[:width, :width]
            ends = (torch.arange(len(lengths), device=tokens.device), torch.tensor(lengths, device=tokens.device) - 1)
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[positions].to(cast)
        x = m.ln_final(m.transformer(x, attn_mask=mask))[ends]
        if m.text_projection is None:
            return x
        return m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection

    def _packed(self, tokens, lengths, rows, width):
        """Tokens, positions and attention masks of texts laid out in ``rows``, and where each text ends."""
        device = tokens.device
        packed = torch.zeros((len(rows), width), dtype=tokens.dtype, device=device)
        positions = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        # causal within the row; each text below is then cut off from the texts before it
        mask = self.model.attn_mask[:width, :width].repeat(len(rows), 1, 1)
        row_of, end_of = [0] * len(lengths), [0] * len(lengths)
        for r, texts in enumerate(rows):
            start = 0
            for i in texts:
                n = lengths[i]
                packed[r, start:start + n] = tokens[i, :n]
                positions[r, start:start + n] = torch.arange(n, device=device)
                mask[r, start:start + n, :start] = float("-inf")
                row_of[i], end_of[i] = r, start + n - 1
                start += n
            # the padding after the last text attends causally: finite, and nothing reads it
        mask = mask.repeat_interleave(self.heads, dim=0)
        return packed, positions, mask, (torch.tensor(row_of, device=device), torch.tensor(end_of, device=device))


def pack_rows(lengths, width):
    """Texts of ``lengths`` tokens laid out in rows of ``width``: first fit, longest first.

    Returns one list of text indices per row, in their order in the row.
    """
    rows, free = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, space in enumerate(free):
            if lengths[i] <= space:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(width - lengths[i])
    return rows
