"""PyTorch reference for bench/TrainBench: the same DCGAN and VAE as src/RetrainDaemon.Training/Models
(same layer shapes, batch, threads), timed the same way. Run with Debian's /usr/bin/python3 and
python3-torch pointed at OpenBLAS (libopenblas0-pthread); prints one JSON line of median times in ms."""
import argparse, json, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Generator(nn.Module):
    def __init__(self, latent=64, width=64, classes=10):
        super().__init__()
        self.width = width
        self.label = nn.Embedding(classes, latent)
        self.project = nn.Linear(2 * latent, 2 * width * 7 * 7, bias=False)
        self.project_norm = nn.BatchNorm1d(2 * width * 7 * 7)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
        self.up1_norm = nn.BatchNorm2d(width)
        self.up2 = nn.ConvTranspose2d(width, 1, 4, 2, 1)

    def forward(self, z, y):
        x = F.relu(self.project_norm(self.project(torch.cat([z, self.label(y)], 1))))
        x = x.view(-1, 2 * self.width, 7, 7)
        x = F.relu(self.up1_norm(self.up1(x)))
        return torch.tanh(self.up2(x))


class Discriminator(nn.Module):
    def __init__(self, width=64, classes=10):
        super().__init__()
        self.label = nn.Embedding(classes, 28 * 28)
        self.down1 = nn.Conv2d(2, width, 4, 2, 1)
        self.down2 = nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False)
        self.down2_norm = nn.BatchNorm2d(2 * width)
        self.classify = nn.Linear(2 * width * 7 * 7, 1)

    def forward(self, x, y):
        x = torch.cat([x, self.label(y).view(-1, 1, 28, 28)], 1)
        x = F.leaky_relu(self.down1(x), 0.2)
        x = F.leaky_relu(self.down2_norm(self.down2(x)), 0.2)
        return self.classify(x.flatten(1))


class Encoder(nn.Module):
    def __init__(self, latent=16, width=32):
        super().__init__()
        self.down1 = nn.Conv2d(1, width, 4, 2, 1)
        self.down2 = nn.Conv2d(width, 2 * width, 4, 2, 1)
        self.head = nn.Linear(2 * width * 7 * 7, 2 * latent)

    def forward(self, x):
        x = F.relu(self.down2(F.relu(self.down1(x))))
        return self.head(x.flatten(1)).chunk(2, 1)


class Decoder(nn.Module):
    def __init__(self, latent=16, width=32):
        super().__init__()
        self.width = width
        self.project = nn.Linear(latent, 2 * width * 7 * 7)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1)
        self.up2 = nn.ConvTranspose2d(width, 1, 4, 2, 1)

    def forward(self, z):
        x = F.relu(self.project(z)).view(-1, 2 * self.width, 7, 7)
        return self.up2(F.relu(self.up1(x)))


def timed(step, warmup, steps):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    b = args.batch
    real = torch.rand(b, 1, 28, 28) * 2 - 1
    labels = torch.randint(0, 10, (b,))

    g, d = Generator(), Discriminator()
    og = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)

    def dcgan_step():
        od.zero_grad()
        with torch.no_grad():
            fake = g(torch.randn(b, 64), labels)
        loss = F.binary_cross_entropy_with_logits(d(real, labels), ones) + F.binary_cross_entropy_with_logits(d(fake, labels), zeros)
        loss.backward()
        od.step()
        og.zero_grad()
        gl = F.binary_cross_entropy_with_logits(d(g(torch.randn(b, 64), labels), labels), ones)
        gl.backward()
        og.step()

    enc, dec = Encoder(), Decoder()
    ov = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), 2e-4, betas=(0.5, 0.999))
    images = torch.rand(b, 1, 28, 28)

    def vae_step():
        ov.zero_grad()
        mean, logvar = enc(images)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = F.binary_cross_entropy_with_logits(dec(z), images, reduction="sum") / b
        kl = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp()) / b
        (rec + kl).backward()
        ov.step()

    result = {
        "torch": torch.__version__,
        "blas": "openblas" if "openblas" in torch.__config__.show().lower() else "see torch.__config__",
        "dcgan_step_ms": timed(dcgan_step, 5, args.steps),
        "vae_step_ms": timed(vae_step, 5, args.steps),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
