"""A small CPU-friendly torch detector for pre-labels, trained on the frames people labeled.

Why this model: pre-labels must work on day one, offline, with no downloadable weights, on two
CPU cores. A four-layer fully convolutional net on a 160x120 input predicts, for each 8 px cell,
objectness, a class and a box (centre offset in the cell, log width and height in cells), as in
single-stage centre-based detectors. It trains in seconds on a few dozen labeled frames; it is
not a production detector, and does not need to be: its job is to draft boxes and to say where it
is unsure, so people audit those frames first.

Uncertainty of an image: how close the model is to changing its answer anywhere in it, the
largest of (a) ``1 - |2 * objectness - 1|`` over all cells (1 when a cell is a coin flip between
object and background) and (b) ``1 - class probability`` of each detection.

Reproducible: the seed comes from the training labels, training runs in one thread, and the
model version is a hash of the trained weights.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torchvision.ops import nms

INPUT_W, INPUT_H = 160, 120
STRIDE = 8
GRID_W, GRID_H = INPUT_W // STRIDE, INPUT_H // STRIDE
OBJECTNESS_MIN = 0.3
NMS_IOU = 0.5


class TinyDetector(nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        chans = [3, 24, 48, 64, 96]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans, chans[1:], strict=False)):
            layers += [nn.Conv2d(cin, cout, 3, stride=2 if i < 3 else 1, padding=1),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Conv2d(chans[-1], 1 + n_classes + 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def image_tensor(data: bytes) -> tuple[torch.Tensor, int, int]:
    """Decoded RGB image resized to the model input, with its original width and height."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
        w, h = rgb.size
        small = rgb.resize((INPUT_W, INPUT_H), Image.BILINEAR)
    arr = np.asarray(small, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), w, h


@dataclass(frozen=True)
class Detection:
    class_name: str
    score: float  # objectness x class probability
    class_prob: float
    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass
class TrainedModel:
    model: TinyDetector
    classes: tuple[str, ...]
    version: str
    weights: bytes


def _targets(boxes: Sequence[Sequence[tuple[int, float, float, float, float]]]):
    """Per-cell targets for boxes already scaled to the model input."""
    n = len(boxes)
    obj = torch.zeros(n, 1, GRID_H, GRID_W)
    cls = torch.full((n, GRID_H, GRID_W), -1, dtype=torch.long)
    reg = torch.zeros(n, 4, GRID_H, GRID_W)
    for i, image_boxes in enumerate(boxes):
        # Larger boxes first, so a small object's cell is not overwritten by a big one behind it.
        for c, x0, y0, x1, y1 in sorted(image_boxes, key=lambda b: -(b[3] - b[1]) * (b[4] - b[2])):
            cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
            gx, gy = min(int(cx), GRID_W - 1), min(int(cy), GRID_H - 1)
            obj[i, 0, gy, gx] = 1.0
            cls[i, gy, gx] = c
            reg[i, :, gy, gx] = torch.tensor([
                cx - gx, cy - gy, float(np.log(max(x1 - x0, 1.0) / STRIDE)),
                float(np.log(max(y1 - y0, 1.0) / STRIDE))])
    return obj, cls, reg


def _loss(out: torch.Tensor, obj: torch.Tensor, cls: torch.Tensor, reg: torch.Tensor,
          n_classes: int) -> torch.Tensor:
    obj_logit = out[:, :1]
    cls_logit = out[:, 1:1 + n_classes]
    box = out[:, 1 + n_classes:]
    pos = obj[:, 0] > 0
    loss = F.binary_cross_entropy_with_logits(obj_logit, obj, pos_weight=torch.tensor(10.0))
    if pos.any():
        loss = loss + F.cross_entropy(cls_logit.permute(0, 2, 3, 1)[pos], cls[pos])
        pred = torch.cat([torch.sigmoid(box[:, :2]), box[:, 2:]], dim=1).permute(0, 2, 3, 1)[pos]
        loss = loss + F.smooth_l1_loss(pred, reg.permute(0, 2, 3, 1)[pos])
    return loss


def seed_from(keys: Sequence[str]) -> int:
    return int.from_bytes(hashlib.sha256("\n".join(sorted(keys)).encode()).digest()[:4], "big")


def train(images: torch.Tensor, boxes: Sequence[Sequence[tuple[int, float, float, float, float]]],
          classes: Sequence[str], seed: int, steps: int = 300, batch: int = 16) -> TrainedModel:
    """Train on ``images`` (N, 3, INPUT_H, INPUT_W) with boxes in model-input pixels.

    Raises:
        ValueError: no images, or images and box lists of different lengths.
    """
    if len(images) == 0 or len(images) != len(boxes):
        raise ValueError(f"need images with one box list each, got {len(images)} images and "
                         f"{len(boxes)} box lists")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical weights for identical inputs
    try:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = TinyDetector(len(classes))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        obj, cls, reg = _targets(boxes)
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, len(images), (min(batch, len(images)),), generator=generator)
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x = images[idx].clone()
            o, c, r = obj[idx].clone(), cls[idx].clone(), reg[idx].clone()
            if flip.any():  # horizontal flip: mirror pixels, cells and the x offset
                x[flip] = x[flip].flip(-1)
                o[flip], c[flip] = o[flip].flip(-1), c[flip].flip(-1)
                r[flip] = r[flip].flip(-1)
                r[flip, 0] = torch.where(o[flip, 0] > 0, 1.0 - r[flip, 0], r[flip, 0])
            loss = _loss(model(x), o, c, r, len(classes))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        buf = io.BytesIO()
        torch.save({"state_dict": model.state_dict(), "classes": list(classes)}, buf)
        weights = buf.getvalue()
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode() + tensor.detach().numpy().tobytes())
        return TrainedModel(model, tuple(classes), f"tinydet-{digest.hexdigest()[:12]}", weights)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def predict(trained: TrainedModel, images: torch.Tensor,
            sizes: Sequence[tuple[int, int]]) -> list[tuple[list[Detection], float]]:
    """Detections (in each image's own pixels) and the image's uncertainty, per image."""
    out = trained.model(images)
    n_cls = len(trained.classes)
    results = []
    for i, (w, h) in enumerate(sizes):
        obj = torch.sigmoid(out[i, 0])
        probs = torch.softmax(out[i, 1:1 + n_cls], dim=0)
        box = out[i, 1 + n_cls:]
        ambiguity = float((1 - (2 * obj - 1).abs()).max())
        ys, xs = torch.nonzero(obj >= OBJECTNESS_MIN, as_tuple=True)
        dets: list[Detection] = []
        if len(ys):
            p, c = probs[:, ys, xs].max(dim=0)
            cx = (xs + torch.sigmoid(box[0, ys, xs])) * STRIDE
            cy = (ys + torch.sigmoid(box[1, ys, xs])) * STRIDE
            bw = torch.exp(box[2, ys, xs].clamp(max=4)) * STRIDE
            bh = torch.exp(box[3, ys, xs].clamp(max=4)) * STRIDE
            sx, sy = w / INPUT_W, h / INPUT_H
            xyxy = torch.stack([((cx - bw / 2) * sx).clamp(0, w), ((cy - bh / 2) * sy).clamp(0, h),
                                ((cx + bw / 2) * sx).clamp(0, w), ((cy + bh / 2) * sy).clamp(0, h)],
                               dim=1)
            score = obj[ys, xs] * p
            keep = nms(xyxy, score, NMS_IOU)
            for k in keep.tolist():
                x0, y0, x1, y1 = (float(v) for v in xyxy[k])
                if x1 - x0 >= 1 and y1 - y0 >= 1:
                    dets.append(Detection(trained.classes[int(c[k])], float(score[k]),
                                          float(p[k]), x0, y0, x1, y1))
        uncertainty = max([ambiguity] + [1 - d.class_prob for d in dets])
        results.append((dets, round(uncertainty, 6)))
    return results


def training_boxes(rows: Sequence[Mapping], sizes: Mapping[str, tuple[int, int]],
                   classes: Sequence[str]) -> dict[str, list[tuple[int, float, float, float, float]]]:
    """One annotator's boxes per image (the first by name: several people labeling the same
    objects would double them), scaled to the model input."""
    index = {c: i for i, c in enumerate(classes)}
    chosen: dict[str, str] = {}
    for r in rows:
        sha, who = str(r["image_sha256"]), str(r["annotator"])
        chosen[sha] = min(chosen.get(sha, who), who)
    out: dict[str, list] = {sha: [] for sha in chosen}
    for r in rows:
        sha = str(r["image_sha256"])
        if str(r["annotator"]) != chosen[sha] or r["class_name"] not in index or sha not in sizes:
            continue
        w, h = sizes[sha]
        sx, sy = INPUT_W / w, INPUT_H / h
        out[sha].append((index[r["class_name"]], r["x_min"] * sx, r["y_min"] * sy,
                         r["x_max"] * sx, r["y_max"] * sy))
    return out


def frames_to_review(results: Sequence[tuple[float, bool]], target_precision: float) -> int:
    """Frames people must audit so that the frames accepted as pre-labeled are right at
    ``target_precision``: accept the most certain first while the accepted set stays at least
    that precise. ``results`` = (uncertainty, pre-label was right) per frame."""
    ordered = sorted(results)
    right, accept = 0, 0
    for k, (_, ok) in enumerate(ordered, start=1):
        right += ok
        if right / k >= target_precision:
            accept = k
    return len(ordered) - accept
