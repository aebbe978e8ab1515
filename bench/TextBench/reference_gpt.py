"""PyTorch reference for bench/TextBench: the same decoder-only transformer as
src/RetrainDaemon.Training/Models/Gpt.cs (pre-LN blocks, fused qkv, exact GELU MLP, tied
embedding, dropout), the same AdamW recipe (decay on matrices only, gradient clip 1.0) and the same
batch, timed the same way (median step after warm-up). Debian's python3-torch 1.13 has no fused
scaled_dot_product_attention, so attention is the explicit masked softmax (nanoGPT's slow path).
Run with Debian's /usr/bin/python3; prints one JSON line."""
import argparse, json, math, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, width, heads, context, dropout):
        super().__init__()
        self.heads, self.width = heads, width
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.attn_dropout = nn.Dropout(dropout)
        self.residual_dropout = nn.Dropout(dropout)
        self.register_buffer("causal", torch.tril(torch.ones(context, context, dtype=torch.bool)))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(self.width, 2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
        y = self.attn_dropout(F.softmax(scores, -1)) @ v
        return self.residual_dropout(self.proj(y.transpose(1, 2).contiguous().view(b, t, c)))


class Block(nn.Module):
    def __init__(self, width, heads, context, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads, context, dropout)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.dropout(self.out(F.gelu(self.fc(self.ln2(x)))))


class Gpt(nn.Module):
    def __init__(self, vocab, layers, heads, width, context, dropout):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, context, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.dropout(self.wte(tokens) + self.wpe(torch.arange(t)))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)


def main():
    parser = argparse.ArgumentParser()
    for name, default in [("threads", 2), ("steps", 30), ("batch", 32), ("vocab", 4096), ("layers", 2), ("heads", 4), ("width", 128), ("context", 128)]:
        parser.add_argument("--" + name, type=int, default=default)
    parser.add_argument("--dropout", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = Gpt(args.vocab, args.layers, args.heads, args.width, args.context, args.dropout)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    tokens = torch.randint(4, args.vocab, (args.batch, args.context))
    targets = torch.randint(4, args.vocab, (args.batch, args.context))

    def step():
        optimizer.zero_grad()
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    times = []
    for i in range(args.steps + 5):
        start = time.perf_counter()
        step()
        if i >= 5:
            times.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"torch": torch.__version__, "gpt_step_ms": statistics.median(times)}))


if __name__ == "__main__":
    main()
